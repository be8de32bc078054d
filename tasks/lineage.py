"""Where a run came from: the git commit, the DVC hashes of the data it read, the Prefect flow run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from tasks.io import input_hash
from tasks.paths import METRICS

PIPELINE_KEY_ENV = "TRANSFERLAB_PIPELINE_RUN"
FLOW_RUN_ENV = "TRANSFERLAB_PREFECT_FLOW_RUN_ID"


# Written by the pipeline itself (dvc repro records what it ran; evaluate writes the committed
# headline metrics): not inputs, so their being rewritten by a run must not make the next run look
# as if it came from uncommitted code.
PIPELINE_WRITTEN = ("dvc.lock", str(METRICS))


def git_commit(root: Path) -> tuple[str, bool]:
    """(commit sha or 'unknown', whether tracked inputs differ from the commit: code, params, .dvc
    files; untracked files and :data:`PIPELINE_WRITTEN` do not count)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        exclude = [f":(exclude){p}" for p in PIPELINE_WRITTEN]
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *exclude],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip() != ""
        return sha, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def dvc_locked_hashes(root: Path) -> dict[str, str]:
    """Every out recorded in dvc.lock, path -> md5 (DVC's own hash of that file or folder)."""
    lock = Path(root) / "dvc.lock"
    if not lock.exists():
        return {}
    try:
        data = yaml.safe_load(lock.read_text()) or {}
    except yaml.YAMLError:
        return {}
    hashes: dict[str, str] = {}
    for stage in (data.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if "md5" in out:
                hashes[out["path"].rstrip("/")] = out["md5"]
    return hashes


def data_tags(root: Path, deps: list[Path]) -> dict[str, str]:
    """Tags naming the exact data a stage read: DVC's md5 where dvc.lock has it, and always our own
    sha256 of the content (which also covers stages run by hand, outside ``dvc repro``)."""
    locked = dvc_locked_hashes(root)
    tags: dict[str, str] = {}
    for dep in deps:
        key = str(dep).rstrip("/")
        if key in locked:
            tags[f"dvc.md5.{key}"] = locked[key]
        if (Path(root) / dep).exists():
            tags[f"data.sha256.{key}"] = input_hash(Path(root) / dep)
    return tags


def _process_start(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _dvc_ancestor() -> str | None:
    """The ``dvc repro`` process this stage runs under, as 'pid-starttime', if any (Linux /proc)."""
    pid = os.getppid()
    for _ in range(6):
        if pid <= 1:
            return None
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        if "dvc" in cmd and ("repro" in cmd or "exp" in cmd):
            return f"dvc-{pid}-{_process_start(pid)}"
        ppid_line = next((l for l in status.splitlines() if l.startswith("PPid:")), None)
        if ppid_line is None:
            return None
        pid = int(ppid_line.split()[1])
    return None


def pipeline_key() -> str | None:
    """What ties the stage runs of one pipeline run together: the Prefect flow's key when it set
    one, else the ``dvc repro`` invocation, else None (a stage run alone gets a parent of its own)."""
    return os.environ.get(PIPELINE_KEY_ENV) or _dvc_ancestor()


def flow_run_id() -> str | None:
    return os.environ.get(FLOW_RUN_ENV)
