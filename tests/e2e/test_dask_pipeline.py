"""execution.runner: dask under `dvc repro`: trial-mode selection's trials on a 2-process LocalCluster give
the same choice and scores as the local runner on the same project, and `dvc status` is clean after."""

from __future__ import annotations

import copy
import json

import pytest

from tests.e2e.project import TINY, make_project, set_param, sh

pytestmark = pytest.mark.e2e


def _trial_params() -> dict:
    params = copy.deepcopy(TINY)
    params["select"].update(mode="trial", budget_epochs=4, candidates=["source-only", "dann", "deep-coral"])
    params["execution"] = {"runner": "local"}
    return params


def _selection(project) -> tuple:
    selection = json.loads((project / "reports" / "selection.json").read_text())
    return selection["method"], [(t["trial_id"], t["method"], t["scores"]) for t in selection.get("trials", [])]


def test_dvc_repro_with_dask_trials_matches_the_local_run(tmp_path, monkeypatch):
    # Dask workers train at one torch thread; the local stage must too for bit-equal numbers (DEV's
    # domain classifier turns float-order differences of 1e-7 into 1e-3 in its score).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    project = make_project(tmp_path / "project", _trial_params())
    # The stages up to select, once; then select again on the cluster, from the same prepared data and
    # source model (execution is no DVC param: where the jobs run must not change what they produce).
    sh(["dvc", "repro", "select"], project)
    local = _selection(project)
    set_param(project, "execution", {"runner": "dask", "n_workers": 2})
    sh(["dvc", "repro", "--force", "--single-item", "select"], project)
    assert _selection(project) == local
    assert local[1], "trial mode recorded no trials"
    assert "Data and pipelines are up to date" in sh(["dvc", "status", "select"], project).stdout
