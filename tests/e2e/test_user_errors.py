"""Errors a user can cause: one line naming the cause, non-zero exit, no half-written outputs,
nothing registered in MLflow."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from tests.e2e.project import BIN, TINY, make_project, sh

pytestmark = pytest.mark.e2e


def _params(**data_overrides):
    params = copy.deepcopy(TINY)
    params["data"].update(data_overrides)
    return params


def _fails_cleanly(project, stage="prepare", match=""):
    proc = sh([str(BIN / "transferlab"), "stage", stage], project, check=False)
    assert proc.returncode != 0
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert match.lower() in lines[0].lower(), lines[0]
    assert not (project / "data" / "prepared").exists() or not any((project / "data" / "prepared").iterdir())
    assert not (project / "mlflow.db").exists()
    return lines[0]


def test_unknown_dataset(tmp_path):
    project = make_project(tmp_path / "p", _params(target={"name": "no-such-set"}))
    _fails_cleanly(project, match="no-such-set")


def test_unreadable_folder(tmp_path):
    project = make_project(tmp_path / "p", _params(target={"name": "usps", "path": str(tmp_path / "missing")}))
    _fails_cleanly(project, match="missing")


def test_a_new_task_without_target_labels(tmp_path):
    rng = np.random.default_rng(0)
    npz = tmp_path / "three.npz"
    np.savez(npz, x=rng.integers(0, 255, (90, 16, 16), dtype=np.uint8), y=np.repeat(np.arange(3), 30),
             classes=np.array(["cat", "dog", "fox"]))
    project = make_project(tmp_path / "p", _params(target={"name": "npz", "path": str(npz)}))
    line = _fails_cleanly(project, match="task transfer, so the target needs labelled samples")
    assert "data.target_labels_per_class is 0" in line


def test_empty_split(tmp_path):
    rng = np.random.default_rng(0)
    npz = tmp_path / "tiny.npz"
    np.savez(npz, x=rng.integers(0, 255, (10, 16, 16), dtype=np.uint8), y=np.arange(10))
    project = make_project(tmp_path / "p", _params(target={"name": "npz", "path": str(npz)}, target_labels_per_class=1))
    _fails_cleanly(project)


def test_bad_param_value(tmp_path):
    project = make_project(tmp_path / "p", _params(target_labels_per_class=-3))
    _fails_cleanly(project, match="data.target_labels_per_class")


def test_later_stage_without_its_inputs(tmp_path):
    project = make_project(tmp_path / "p")
    _fails_cleanly(project, stage="similarity", match="missing")
