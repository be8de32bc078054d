"""The MLflow store of a project, made ready while ``transferlab run`` starts up.

A new project's SQLite store needs its schema migrations before the first stage can log (2.5 s
here, plus 1.6 s to import MLflow). A child process does that in parallel with this process's
imports and the first stage's data loading; MLflow waits for it before its first use. If the command then fails before any run
was recorded, the store it made is removed again, so an early error leaves nothing behind.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tasks.paths import tracking_uri

_CREATE = ("import sys; from mlflow.tracking import MlflowClient; "
           "MlflowClient(sys.argv[1]).search_experiments(max_results=1)")


class TrackingStoreSetup:
    """Creates the project's SQLite store in a child process if it does not exist yet."""

    def __init__(self, root: Path) -> None:
        uri = tracking_uri(root)
        db = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
        self.db = db if db is not None and not db.exists() else None
        # Output and exit code are not read: should the child fail, the first stage sets the
        # store up itself and reports the cause there.
        self.process = None if self.db is None else subprocess.Popen(
            [sys.executable, "-c", _CREATE, uri], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait(self) -> None:
        if self.process is not None:
            self.process.wait()

    def discard_if_unused(self) -> None:
        """Remove the store this set-up created if it holds no run."""
        self.wait()
        if self.db is None or not self.db.exists():
            return
        try:
            with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as db:
                used = db.execute("SELECT EXISTS (SELECT 1 FROM runs)").fetchone()[0]
        except sqlite3.Error:  # no runs table: nothing was ever recorded
            used = False
        if not used:
            self.db.unlink()
