"""What a killed run leaves behind, put right when the next run starts (under the project lock, so
nothing found here belongs to a live run).

- Temporary folders and files of the atomic writers (``.NAME.tmp-*``) are removed; a previous
  output that a kill caught between its two renames (``.NAME.old-PID`` with ``NAME`` gone) is put
  back, so that DVC sees it unchanged instead of re-running its stage.
- ``dvc.lock`` left empty or truncated (DVC's writes are atomic in the project's environment,
  :mod:`tasks.atomic_dvc_files`; this covers one set up without it) is restored from the last good
  copy (``.dvc/tmp/dvc.lock.good``, refreshed after every stage), or set aside when there is none,
  which makes DVC re-run the stages: deterministic, so with the same results.
- MLflow runs of this project still RUNNING belong to a dead attempt: they are marked FAILED, and
  the model versions they registered are tagged ``transferlab.abandoned`` so that no promotion
  picks them.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import yaml

from tasks import paths

LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-\w+$")
LOCK = Path("dvc.lock")
GOOD_LOCK = Path(".dvc/tmp/dvc.lock.good")


def _output_dirs(root: Path) -> set[Path]:
    """Where the stages and `datasets add` write: each output path of tasks/paths.py and its parent."""
    found = {Path(root), Path(root) / paths.RAW_DATA.parent}  # the root: params.yaml's own temporary file
    for value in vars(paths).values():
        if isinstance(value, Path) and value.parts and value.parts[0] in ("data", "models", "reports"):
            found.update({Path(root) / value, Path(root) / value.parent})
    return {d for d in found if d.is_dir()}


def clean_leftovers(root: Path) -> list[str]:
    """Remove temporary outputs of killed runs, restore interrupted replacements; returns what it did."""
    notes = []
    for folder in sorted(_output_dirs(root)):
        for entry in sorted(folder.iterdir()):
            m = LEFTOVER.match(entry.name)
            if not m:
                continue
            final = entry.with_name(m["name"])
            if m["kind"] == "old" and not final.exists():
                os.replace(entry, final)
                notes.append(f"restored {final.relative_to(root)} (a run was killed while replacing it)")
                continue
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            notes.append(f"removed {entry.relative_to(root)} (left by a killed run)")
    return notes


def _readable_lock(path: Path) -> bool:
    """Whether DVC would accept it: YAML that passes DVC's own lock-file schema."""
    from dvc.schema import COMPILED_LOCKFILE_SCHEMA
    from voluptuous import Invalid

    try:
        data = yaml.safe_load(path.read_text())
        COMPILED_LOCKFILE_SCHEMA(data)
    except (OSError, yaml.YAMLError, UnicodeDecodeError, Invalid):
        return False
    return isinstance(data, dict)


def save_good_lock(root: Path) -> None:
    """Keep a copy of dvc.lock while it is whole (after each stage, and when a stage starts)."""
    lock, good = Path(root) / LOCK, Path(root) / GOOD_LOCK
    if good.parent.is_dir() and lock.exists() and _readable_lock(lock):
        tmp = good.with_name(good.name + ".tmp-copy")
        shutil.copyfile(lock, tmp)
        os.replace(tmp, good)


def repair_dvc_lock(root: Path) -> str | None:
    lock, good = Path(root) / LOCK, Path(root) / GOOD_LOCK
    if not lock.exists() or _readable_lock(lock):
        return None
    if good.exists() and _readable_lock(good):
        shutil.copyfile(good, lock)
        return "dvc.lock was damaged (empty or not a valid lock file): restored the last good copy"
    os.replace(lock, lock.with_name("dvc.lock.damaged"))
    return "dvc.lock was damaged and no good copy exists: set aside as dvc.lock.damaged; every stage re-runs"


def close_orphan_runs(root: Path, experiment: str) -> list[str]:
    """Mark this project's RUNNING MLflow runs FAILED and tag their model versions abandoned."""
    from mlflow.tracking import MlflowClient

    from tasks import tracking

    store = paths.tracking_uri(root)
    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).exists():
        return []
    tracking.configure(root, experiment)
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    found = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING' and "
                               f"tags.`transferlab.project` = '{Path(root).resolve()}'", max_results=1000)
    notes = []
    for run in found:
        if run.data.tags.get("transferlab.pid") == str(os.getpid()):
            continue
        client.set_tag(run.info.run_id, "transferlab.orphaned", "true")
        client.set_terminated(run.info.run_id, "FAILED")
        for version in client.search_model_versions(f"run_id = '{run.info.run_id}'"):
            client.set_model_version_tag(version.name, version.version, tracking.ABANDONED, "true")
            notes.append(f"model version {version.name} v{version.version} of a dead run tagged abandoned")
        notes.append(f"MLflow run {run.info.run_name or run.info.run_id} of a dead attempt marked FAILED")
    return notes


def recover(root: Path, experiment: str | None = None) -> list[str]:
    """Everything above, in order; ``experiment`` None skips MLflow (the store may not exist yet)."""
    notes = clean_leftovers(root)
    if note := repair_dvc_lock(root):
        notes.append(note)
    if experiment is not None:
        notes.extend(close_orphan_runs(root, experiment))
    return notes
