"""execution.runner: dask under `dvc repro`: trial-mode selection's trials on a 2-process LocalCluster,
the same choice as the local runner, each trial a nested MLflow run, and `dvc status` clean after."""

from __future__ import annotations

import copy
import json

import pytest

from tests.e2e.project import TINY, make_project, sh

pytestmark = pytest.mark.e2e


def _trial_params(runner: dict) -> dict:
    params = copy.deepcopy(TINY)
    params["select"].update(mode="trial", budget_epochs=4, candidates=["source-only", "dann", "deep-coral"])
    params["execution"] = runner
    return params


def test_dvc_repro_with_dask_trials_matches_the_local_run(tmp_path, monkeypatch):
    # Dask workers train at one torch thread; the local stage must too for bit-equal numbers (DEV's
    # domain classifier turns float-order differences of 1e-7 into 1e-3 in its score).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    choices = {}
    for name, runner in (("local", {"runner": "local"}), ("dask", {"runner": "dask", "n_workers": 2})):
        project = make_project(tmp_path / name, _trial_params(runner))
        sh(["dvc", "repro"], project)
        selection = json.loads((project / "reports" / "selection.json").read_text())
        choices[name] = (selection["method"], [(t["trial_id"], t["method"], t["scores"]) for t in selection.get("trials", [])])
        assert "Data and pipelines are up to date" in sh(["dvc", "status"], project).stdout
    assert choices["dask"] == choices["local"]
    assert choices["dask"][1], "trial mode recorded no trials"
