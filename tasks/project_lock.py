"""One run per project at a time: an advisory lock held for the whole of a run.

``transferlab run``, a run triggered from the Prefect UI and each ``transferlab stage`` that
``dvc repro`` starts take the same lock file (``.dvc/tmp/transferlab-run.lock``, or
``.transferlab-run.lock`` outside a DVC project). The operating system releases it when its
holder dies, so a killed run never leaves a stale lock; the file only names the last holder
(pid, start time, command) for the one-line refusal. Re-entrant within a process: the CLI takes it
before starting Prefect, and the flow it then runs takes it again.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from transferlab.errors import TransferlabError

_held: dict[Path, int] = {}  # resolved project root -> depth, for the re-entrant case


class ProjectBusy(TransferlabError):
    """Another process is running on this project."""


def lock_path(root: Path) -> Path:
    root = Path(root)
    return root / ".dvc" / "tmp" / "transferlab-run.lock" if (root / ".dvc").is_dir() else root / ".transferlab-run.lock"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"pid {info.get('pid')}, started {started}: {info.get('command', '?')}"


def busy_holder(root: Path) -> str | None:
    """Who holds ``root``'s run lock (pid, start, command), or None when it is free; probes without taking it."""
    path = lock_path(Path(root).resolve())
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _holder(path)
    finally:
        os.close(fd)  # also drops the shared lock when the probe got it
    return None


@contextmanager
def hold(root: Path, wait: bool = False) -> Iterator[None]:
    """Hold the project's run lock; without ``wait``, refuse at once if another process holds it."""
    root = Path(root).resolve()
    if root in _held:
        _held[root] += 1
        try:
            yield
        finally:
            _held[root] -= 1
        return
    path = lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise ProjectBusy(f"another run holds {root} ({_holder(path)}); wait for it to end, "
                              "or pass --wait") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "started": time.time(),
                                 "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:200]}).encode())
        _held[root] = 1
        try:
            yield
        finally:
            del _held[root]
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def champion_contest(root: Path) -> Iterator[None]:
    """Hold ``root``'s champion-contest lock, waiting for it: the registry's champion is decided and
    moved by one evaluate at a time, also when several experiments of a DVC queue evaluate at once
    (each in its own workspace, so the run lock above does not order them)."""
    path = lock_path(Path(root).resolve()).with_name("transferlab-champion.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
