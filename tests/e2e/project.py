"""A throw-away copy of the project in a temporary git repo, on a tiny configuration."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

TINY = {
    "seed": 0,
    "device": "cpu",
    "distributed": {"processes": 1, "backend": "auto"},
    "data": {
        "source": {"name": "mnist5k", "max_samples": 500},
        "target": {"name": "uci-digits", "max_samples": 400},
        "image_size": 16,
        "channels": 1,
        "source_val_fraction": 0.2,
        "target_labels_per_class": 0,
        "target_test_fraction": 0.3,
    },
    "model": {"arch": "lenet", "hidden": 64},
    "pretrain": {"epochs": 2, "batch_size": 64, "lr": 0.002, "weight_decay": 0.0, "patience": 2},
    "similarity": {"permutations": 50, "max_samples": 150, "estimator": "auto", "alpha": 0.05, "plots": True},
    "select": {"mode": "rule", "force_method": None, "unsupervised_method": "dann"},
    "adapt": {"train": {"epochs": 2, "batch_size": 64, "lr": 0.002, "weight_decay": 0.0, "patience": 2},
              "methods": {"dann": {"trade_off": 1.0}}},
    "evaluate": {"bootstrap": 200, "confidence": 0.95},
    "mlflow": {"experiment": "transferlab", "model_prefix": "transferlab", "register_models": True},
}


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e.update(DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true",
             GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
             GIT_COMMITTER_EMAIL="t@example.com")
    e.pop("MLFLOW_TRACKING_URI", None)
    return e


def sh(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_project(path: Path, params: dict | None = None) -> Path:
    """Copy what the DAG needs (dvc.yaml, code deps) into ``path``, init git + DVC, commit."""
    path.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("transferlab", "tasks", "flows"):
        shutil.copytree(ROOT / name, path / name, ignore=ignore)
    shutil.copy(ROOT / "dvc.yaml", path / "dvc.yaml")
    shutil.copy(ROOT / "dvc.lock", path / "dvc.lock")  # as a clone has it: committed, from another run
    shutil.copytree(ROOT / "models" / "pretrained", path / "models" / "pretrained")
    (path / "data" / "raw").mkdir(parents=True)
    shutil.copy(ROOT / "data" / "raw" / "README.md", path / "data" / "raw" / "README.md")
    shutil.copy(ROOT / ".gitignore", path / ".gitignore")
    (path / "params.yaml").write_text(yaml.safe_dump(params or TINY, sort_keys=False))
    sh(["git", "init", "-q"], path)
    sh([str(BIN / "dvc"), "init", "-q"], path)
    sh(["git", "add", "-A"], path)
    sh(["git", "commit", "-qm", "tiny project"], path)
    return path


def set_param(path: Path, dotted: str, value) -> None:
    raw = yaml.safe_load((path / "params.yaml").read_text())
    node = raw
    keys = dotted.split(".")
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    (path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
