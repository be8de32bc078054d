"""The select stage in both modes, on a tiny synthetic pair written as prepared data."""

import json
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tasks import select
from tasks.io import write_json
from tasks.paths import SELECTION, SIMILARITY
from transferlab.config import parse_params

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blob_project import write_blob_project  # noqa: E402

SHIFTED = {"mmd": {"mmd2": 0.4, "p_value": 0.001, "normalised": 0.5}, "layers": [], "a_distance": 1.9,
           "transferability": None}


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    write_blob_project(tmp_path, source_epochs=4, with_test=False)
    write_json(tmp_path / SIMILARITY, SHIFTED)
    return tmp_path


def test_rule_mode_writes_method_and_reasons(project):
    params = parse_params({"data": {"target_labels_per_class": 10}})
    summary = select.run(params, project)
    saved = json.loads((project / SELECTION).read_text())
    assert saved["method"] == summary["method"] != "source-only"
    assert saved["mode"] == "rule" and saved["reasons"] and saved["candidates"]


def test_trial_mode_picks_a_method_that_beats_source_only_and_logs_each_trial(project):
    params = parse_params({"select": {"mode": "trial", "candidates": ["source-only", "finetune"], "budget_epochs": 60,
                                      "search": {}, "workers": 2},
                           "adapt": {"train": {"epochs": 10, "batch_size": 32}}})
    summary = select.run(params, project)
    saved = json.loads((project / SELECTION).read_text())
    assert summary["method"] == saved["method"] == "finetune"
    assert saved["mode"] == "trial" and saved["decided_by"]
    client = MlflowClient()
    stage_run = client.search_runs([client.get_experiment_by_name("transferlab").experiment_id],
                                   "tags.`transferlab.stage` = 'select'")[0]
    trials = client.search_runs([stage_run.info.experiment_id],
                                f"tags.mlflow.parentRunId = '{stage_run.info.run_id}'")
    assert {t.data.tags["method"] for t in trials} == {"source-only", "finetune"}
