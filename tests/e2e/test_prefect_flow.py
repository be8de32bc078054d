"""The Prefect flow runs the same DAG, one task run per stage, and leaves `dvc status` clean."""

from __future__ import annotations

import json
import os

import pytest
from mlflow.tracking import MlflowClient
from prefect.testing.utilities import prefect_test_harness

from tests.e2e.project import BIN, make_project, sh

pytestmark = pytest.mark.e2e

STAGES = ["prepare", "validate", "pretrain", "similarity", "select", "adapt", "evaluate"]


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_flow_runs_every_stage_and_dvc_agrees(harness, tmp_path, monkeypatch):
    from flows.pipeline import transfer_pipeline

    project = make_project(tmp_path / "proj")
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    overrides = {"data.target_labels_per_class": 3, "select.mode": "trial", "select.workers": 2,
                 "select.candidates": ["source-only", "finetune", "l2-sp"], "select.budget_epochs": 6}
    result = transfer_pipeline(project_dir=str(project), overrides=overrides)
    assert list(result["stages"]) == STAGES
    assert set(result["stages"].values()) == {"ran"}
    assert "up to date" in sh([str(BIN / "dvc"), "status"], project).stdout
    evaluation = json.loads((project / "reports/evaluation.json").read_text())
    assert "target-only" in evaluation["models"]  # labels were asked for, so the baseline exists
    selection = json.loads((project / "reports/selection.json").read_text())
    assert selection["mode"] == "trial" and len(selection["trials"]) >= 3

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("transferlab").experiment_id],
                              "tags.`transferlab.role` = 'stage'")
    trials = client.search_runs([runs[0].info.experiment_id], "tags.`transferlab.role` = 'trial'")
    assert len(trials) == len(selection["trials"])
    flow_ids = {r.data.tags.get("prefect.flow_run_id") for r in runs}
    assert len(flow_ids) == 1 and None not in flow_ids
    assert len({r.data.tags["mlflow.parentRunId"] for r in runs}) == 1

    again = transfer_pipeline(project_dir=str(project))
    assert set(again["stages"].values()) == {"skipped (up to date)"}
