from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from tasks import io, lineage, tracking
from transferlab.config import parse_params

PARAMS = parse_params({"mlflow": {"experiment": "exp"}})


def test_dvc_lock_hashes_and_data_tags(tmp_path):
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  prepare:\n    cmd: x\n    outs:\n    - path: data/prepared/source\n"
        "      md5: abc.dir\n      size: 1\n")
    (tmp_path / "data/prepared/source").mkdir(parents=True)
    (tmp_path / "data/prepared/source/train.npz").write_bytes(b"123")
    tags = lineage.data_tags(tmp_path, ["data/prepared/source"])
    assert tags["dvc.md5.data/prepared/source"] == "abc.dir"
    assert len(tags["data.sha256.data/prepared/source"]) == 64


def test_pipeline_key_comes_from_the_flow_when_set(monkeypatch):
    monkeypatch.setenv(lineage.PIPELINE_KEY_ENV, "prefect-123")
    assert lineage.pipeline_key() == "prefect-123"


def _stage(tmp_path, stage):
    with tracking.stage_run(tmp_path, PARAMS, stage, []) as run:
        run.log_metrics({"x": 1.0, "skip": None})
        return run


def test_stages_of_one_pipeline_run_share_a_parent(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(lineage.PIPELINE_KEY_ENV, "key-a")
    monkeypatch.setenv(lineage.FLOW_RUN_ENV, "flow-1")
    a, b = _stage(tmp_path, "prepare"), _stage(tmp_path, "validate")
    monkeypatch.setenv(lineage.PIPELINE_KEY_ENV, "key-b")
    c = _stage(tmp_path, "prepare")
    assert a.parent_id == b.parent_id != c.parent_id
    client = MlflowClient()
    parent = client.get_run(a.parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["transferlab.role"] == "pipeline"
    child = client.get_run(b.run_id)
    assert child.data.tags["mlflow.parentRunId"] == a.parent_id
    assert child.data.tags["prefect.flow_run_id"] == "flow-1"
    assert child.data.tags["transferlab.stage"] == "validate"
    assert child.data.metrics == {"x": 1.0}


def test_runs_name_what_started_them_as_their_mlflow_source(tmp_path, monkeypatch):
    """Not the script Python ran: from the Prefect UI that was prefect/engine.py."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr("sys.argv", ["/venv/lib/python3.11/site-packages/prefect/engine.py"])
    monkeypatch.setenv(lineage.PIPELINE_KEY_ENV, "prefect-flow-2")
    monkeypatch.setenv(lineage.FLOW_RUN_ENV, "flow-2")
    run = _stage(tmp_path, "similarity")
    client = MlflowClient()
    for run_id in (run.run_id, run.parent_id):
        tags = client.get_run(run_id).data.tags
        assert tags["mlflow.source.name"] == f"transfer-pipeline (Prefect flow run) in {tmp_path.resolve()}"
        assert tags["mlflow.source.type"] == "JOB"  # shown whole in the MLflow UI
    monkeypatch.delenv(lineage.FLOW_RUN_ENV)
    monkeypatch.setenv(lineage.PIPELINE_KEY_ENV, "dvc-77-123")
    assert tracking.source_tags(tmp_path)["mlflow.source.name"] == f"dvc repro in {tmp_path.resolve()}"


def test_registered_model_gets_a_version_with_tags(tmp_path, monkeypatch):
    from transferlab.models import ModelSpec, build_model

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(lineage.PIPELINE_KEY_ENV, "key-r")
    model = build_model(ModelSpec(image_size=16, hidden=16), seed=0)
    example = np.zeros((2, 1, 16, 16), dtype=np.float32)
    data = tmp_path / "data" / "prepared" / "source"
    data.mkdir(parents=True)
    (data / "train.npz").write_bytes(b"abc")
    with tracking.stage_run(tmp_path, PARAMS, "pretrain", [Path("data/prepared/source")]) as run:
        v1 = run.register_model(model, "m-source", example, {"role": "source"})
        v2 = run.register_model(model, "m-source", example, {"role": "source"})
    assert (v1, v2) == (1, 2)
    version = MlflowClient().get_model_version("m-source", "2")
    assert version.tags["role"] == "source"
    # the version carries its lineage itself, not only through its run
    assert version.tags["params.sha256"] == tracking.params_hash(PARAMS) and len(version.tags["params.sha256"]) == 64
    sha = version.tags["data.sha256.data/prepared/source"]
    assert sha == io.input_hash(data) and "git.commit" in version.tags
    inputs = MlflowClient().get_run(run.run_id).inputs.dataset_inputs
    assert [(i.dataset.name, i.dataset.digest, i.dataset.source_type) for i in inputs] == [
        ("data/prepared/source", sha[:32], "transferlab")]
    loaded = mlflow.pytorch.load_model("models:/m-source/2")
    assert loaded(torch.zeros(3, 1, 16, 16)).shape == (3, 10)  # batch size is not fixed by the export


def test_configure_waits_for_a_store_being_set_up_elsewhere_once(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    calls = []
    tracking.wait_before_first_use(lambda: calls.append("waited"))
    tracking.configure(tmp_path, "exp")
    tracking.configure(tmp_path, "exp")
    assert calls == ["waited"]


def test_git_dirty_ignores_the_lock_the_run_rewrites_but_not_code(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "c")
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (tmp_path / "new_untracked.txt").write_text("x")
    sha, dirty = lineage.git_commit(tmp_path)
    assert len(sha) == 40 and dirty is False
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    assert lineage.git_commit(tmp_path)[1] is True


def test_two_projects_on_one_store_never_share_an_experiment_or_a_model(tmp_path, monkeypatch):
    """Issue 21: with one MLFLOW_TRACKING_URI, a second project writing under the first one's names is
    refused before it writes (its artifacts and champion would land in the first one's)."""
    from tasks import preflight
    from transferlab.config import parse_params
    from transferlab.errors import ConfigError

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'shared.db'}")
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    params = parse_params({})
    from transferlab.models import ModelSpec, build_model

    model = build_model(ModelSpec(image_size=16, hidden=16), seed=0)
    with tracking.stage_run(first, params, "pretrain", []) as run_:
        run_.register_model(model, tracking.model_name("transferlab", "source"), np.zeros((1, 1, 16, 16), np.float32), {})
    preflight.check(params, first)  # its own names: fine
    with pytest.raises(ConfigError, match=f"experiment 'transferlab' .* belongs to the project at {first}"):
        preflight.check(params, second)
    renamed = parse_params({"mlflow": {"experiment": "second"}})
    with pytest.raises(ConfigError, match=f"registered model 'transferlab-source' .* belongs to the project at {first}"
                                          ".*mlflow.model_prefix"):
        preflight.check(renamed, second)
    preflight.check(parse_params({"mlflow": {"experiment": "second", "model_prefix": "second"}}), second)
    with pytest.raises(ConfigError, match="belongs to the project at"):
        tracking.configure(second, "transferlab")  # the stage itself refuses too
