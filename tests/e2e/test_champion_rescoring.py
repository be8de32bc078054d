"""`transferlab run`, then `transferlab run --set seed=1`: the second run has another target test split,
so the champion must be re-scored on it. It used to be loaded back through MLflow's pt2 model, which
refuses eval(), and every such run said 'the current champion v1 could not be scored'."""

from __future__ import annotations

import json
import subprocess

import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.project import BIN, env, make_project

pytestmark = pytest.mark.e2e


def _run(project, tmp_path, *args):
    run_env = {**env(), "PREFECT_HOME": str(tmp_path / "prefect-home")}
    run_env.pop("PREFECT_API_URL", None)
    proc = subprocess.run([str(BIN / "transferlab"), "run", *args], cwd=project, env=run_env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc, json.loads((project / "reports" / "evaluation.json").read_text())


def test_a_run_on_another_test_split_rescores_the_champion(tmp_path, monkeypatch):
    project = make_project(tmp_path / "proj")
    first_out, first = _run(project, tmp_path)
    assert first["champion_reason"] in first_out.stdout and f"verdict                : {first['verdict']}" \
        in first_out.stdout
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project / 'mlflow.db'}")
    client = MlflowClient()
    name = first["registered_model"]
    if not first["champion_moved"]:  # no significant gain on this tiny run: make v1 the champion by hand
        client.set_registered_model_alias(name, "champion", str(first["adapted_version"]))

    second_out, second = _run(project, tmp_path, "--set", "seed=1")
    assert second["test"]["sha256"] != first["test"]["sha256"]  # the precondition: another test split
    assert "could not be scored" not in second["champion_reason"], second["champion"]
    if second["promotion"]["verdict"] == "positive-transfer":  # only then is the champion worth scoring
        assert "re-scored on this hold-out" in second["champion_reason"]
    assert second["champion_reason"] in second_out.stdout

    # The re-scoring path itself, on the real registered lenet: the second version, re-scored from its
    # registered weights on the second run's hold-out, scores exactly what evaluate measured in memory.
    from tasks.data_files import target_test
    from tasks.evaluate import _score_registered
    from transferlab.evaluation.promotion import promotion_split

    test = target_test(project)
    held_out = test.subset(promotion_split(test.y, second["promotion"]["share"], second["test"]["sha256"]).promotion)
    score = _score_registered(name, held_out)
    assert score(str(second["adapted_version"])) == pytest.approx(second["promotion"]["accuracy"])
    assert score(str(first["adapted_version"])) is not None
