"""How a failed command ends on the terminal: one line, and the traceback in a file when there is one.

Three kinds of failure, three endings:

- a user error (:class:`~transferlab.errors.TransferlabError`: bad params, bad data, a busy project):
  its message, exit 2;
- the machine refusing a write or read (a full disk, a read-only or foreign-owned folder, a file
  size limit): ``error: cannot write PATH: No space left on device``, exit 2; nothing to debug,
  but the traceback is still kept;
- anything else is a bug: ``error: internal error (Type: message)`` and where its traceback was
  written, exit 1.

The traceback goes to ``.transferlab/errors/`` in the project (git-ignored), or to the system's
temporary folder when the project cannot take it (the disk that is full, the folder that is read-only).
"""

from __future__ import annotations

import errno
import os
import re
import sqlite3
import tempfile
import time
import traceback
from pathlib import Path

from transferlab.errors import TransferlabError

LOG_DIR = Path(".transferlab/errors")
# The machine's refusals; a missing file is not among them (the readers name missing data themselves,
# so one reaching here is a bug).
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EMFILE}

SQLITE_ENVIRONMENT = ("disk is full", "readonly database", "unable to open database file", "disk I/O error")
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(tmp|old)-\w+$")


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:300]


def write_traceback(exc: BaseException, root: Path) -> Path | None:
    """The exception's traceback in a new file; None if no folder would take it."""
    text = "".join(traceback.format_exception(exc))
    name = f"error-{time.strftime('%Y%m%d-%H%M%S')}-{id(exc) % 10000:04d}.log"
    for folder in (Path(root) / LOG_DIR, Path(tempfile.gettempdir()) / "transferlab-errors"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
            return folder / name
        except OSError:
            continue
    return None


def _environment_error(exc: BaseException) -> tuple[str | None, str] | None:
    """(the path, the reason) when the machine refused a write or read behind ``exc`` (also when a
    library wrapped it: SQLite's full disk reaches us as SQLAlchemy's or MLflow's error)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
            return _final_name(exc.filename), exc.strerror or str(exc)
        if isinstance(exc, sqlite3.OperationalError) and any(m in str(exc) for m in SQLITE_ENVIRONMENT):
            return None, f"SQLite store: {exc}"
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "orig", None)
    return None


def _final_name(path) -> str | None:
    """The output a temporary name stands for (``reports/.evaluation.tmp-x1y2`` -> ``reports/evaluation``)."""
    if path is None:
        return None
    p = Path(os.fsdecode(path))
    m = TEMPORARY.match(p.name)
    return str(p.with_name(m["name"])) if m else str(p)


def describe(exc: BaseException, root: Path) -> tuple[str, int]:
    """(the one line to print, the exit code) for a command that ended with ``exc``."""
    if isinstance(exc, TransferlabError):
        return f"error: {_first_line(str(exc))}", 2
    log = write_traceback(exc, root)
    where = f"traceback in {log}" if log else "no traceback file could be written"
    if (refused := _environment_error(exc)) is not None:
        path, reason = refused
        return f"error: cannot write{f' {path}' if path else ''}: {reason} ({where})", 2
    return f"error: internal error ({type(exc).__name__}: {_first_line(str(exc))}); {where}", 1
