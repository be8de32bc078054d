"""The adapt stage across 2 processes (torchrun, gloo): one set of outputs and one MLflow run, written
by rank 0; the params and methods that cannot run distributed are refused with one line, up front."""

import json
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tasks import adapt
from tasks.io import write_json
from tasks.paths import ADAPTED_MODEL, BASELINE_MODELS, SELECTION
from transferlab.config import parse_params
from transferlab.errors import ConfigError, MethodRequirementError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blob_project import write_blob_project  # noqa: E402


def _params(processes: int = 2, **dann):
    return parse_params({"distributed": {"processes": processes}, "data": {"target_labels_per_class": 10},
                         "adapt": {"train": {"epochs": 2, "batch_size": 16, "max_steps_per_epoch": 4},
                                   "methods": {"dann": dann}}})


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    write_blob_project(tmp_path, source_epochs=2)
    return tmp_path


def _select(project: Path, method: str, **method_params) -> None:
    write_json(project / SELECTION, {"method": method, "candidates": [], "reasons": ["test"],
                                     "method_params": method_params})


@pytest.mark.e2e
def test_adapt_across_two_processes_writes_once_from_rank_zero(project):
    _select(project, "dann")
    summary = adapt.run(_params(), project)  # starts torchrun with 2 workers
    assert summary["method"] == "dann" and summary["mlflow_version"] == 1
    uri = f"sqlite:///{project / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    runs = client.search_runs([client.get_experiment_by_name("transferlab").experiment_id],
                              "tags.`transferlab.stage` = 'adapt'")
    assert len(runs) == 1  # a second rank logging would have opened its own run
    history = client.get_metric_history(runs[0].info.run_id, "loss")
    assert [m.step for m in history] == [1, 2]  # one record per epoch, from rank 0 alone
    assert [int(v.version) for v in client.search_model_versions("name = 'transferlab-adapted'")] == [1]
    manifest = json.loads((project / ADAPTED_MODEL / "manifest.json").read_text())
    assert manifest["mlflow_run_id"] == runs[0].info.run_id
    assert sorted(p.name for p in (project / ADAPTED_MODEL).iterdir()) == ["manifest.json", "model.json",
                                                                          "model.safetensors"]
    assert (project / BASELINE_MODELS / "target-only" / "model.safetensors").exists()
    leftovers = [p for p in project.rglob("*") if ".tmp" in p.name or ".old" in p.name]
    assert not leftovers


def test_a_method_that_cannot_train_distributed_is_refused_before_any_process_starts(project):
    _select(project, "dan")
    with pytest.raises(MethodRequirementError, match="method 'dan' does not train across processes.*dann"):
        adapt.run(_params(), project)
    _select(project, "dann", bnm=1.0)
    with pytest.raises(MethodRequirementError, match="bnm or bsp"):
        adapt.run(_params(), project)
    assert not (project / ADAPTED_MODEL).exists()


@pytest.mark.parametrize("raw, message", [
    ({"distributed": {"processes": 3}}, "pretrain.batch_size 64 does not split evenly over distributed.processes 3"),
    ({"distributed": {"processes": 2}, "adapt": {"train": {"batch_size": 33}}},
     "adapt.train.batch_size 33 does not split evenly"),
    ({"distributed": {"backend": "nccl"}}, "distributed.backend 'nccl' needs device 'cuda'"),
    ({"distributed": {"backend": "mpi"}}, "distributed.backend"),
    ({"distributed": {"processes": 0}}, "distributed.processes"),
    ({"distributed": {"workers": 2}}, "unknown key 'distributed.workers'"),
])
def test_distributed_params_errors_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_params(raw, "params.yaml")


def test_one_process_is_the_default_and_starts_nothing():
    params = parse_params({})
    assert params.distributed.processes == 1 and params.distributed.backend == "auto"
    from tasks import distributed

    assert not distributed.wanted(params) and distributed.wanted(_params())
