"""A parameter sweep of the whole pipeline through DVC's queue: two experiments run at once
(`dvc exp run --queue` + `dvc queue start -j 2`), both appear in `dvc exp show`, and both are
recorded in the project's own MLflow store (not in DVC's temporary workspaces, deleted afterwards)."""

from __future__ import annotations

import copy
import csv
import io
import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.project import BIN, TINY, env, make_project, sh

pytestmark = pytest.mark.e2e

DVC = str(BIN / "dvc")


def _tinier() -> dict:
    params = copy.deepcopy(TINY)
    params["pretrain"]["epochs"] = 1
    params["adapt"]["train"]["epochs"] = 1
    params["similarity"].update(permutations=20, plots=False)
    params["evaluate"]["bootstrap"] = 100
    return params


def _wait_for_queue(path, timeout_s: float = 1500) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        status = sh([DVC, "queue", "status"], path).stdout
        if "Queued" not in status and "Running" not in status:
            return status
        time.sleep(10)
    raise AssertionError(f"the queue did not finish in {timeout_s} s:\n{status}")


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    path = make_project(tmp_path_factory.mktemp("queue") / "proj", _tinier())
    for seed in (1, 2):
        sh([DVC, "exp", "run", "--queue", "-S", f"seed={seed}", "-n", f"seed-{seed}"], path)
    # The queue's workers outlive `dvc queue start`: their output must not be a pipe someone waits on.
    subprocess.run([DVC, "queue", "start", "-j", "2"], cwd=path, env=env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status = _wait_for_queue(path)
    logs = {n: sh([DVC, "queue", "logs", n], path, check=False).stdout[-3000:] for n in ("seed-1", "seed-2")}
    return path, status, logs


def test_both_queued_experiments_succeed_and_show_with_their_seeds_and_metrics(swept):
    path, status, logs = swept
    assert status.count("Success") == 2, f"{status}\n{logs}"
    rows = {r["Experiment"]: r for r in csv.DictReader(io.StringIO(sh([DVC, "exp", "show", "--csv"], path).stdout))}
    for seed in (1, 2):
        row = rows[f"seed-{seed}"]
        assert row["seed"] == str(seed) and row["State"] == "Success"
        assert 0.0 <= float(row["adapted_accuracy"]) <= 1.0
    assert not (path / "models" / "source").exists()  # the workspace itself ran nothing


def test_both_experiments_are_recorded_in_the_projects_own_mlflow_store(swept):
    path, _, _ = swept
    uri = f"sqlite:///{path / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    experiment = client.get_experiment_by_name("transferlab")
    runs = client.search_runs([experiment.experiment_id], "tags.`transferlab.role` = 'stage'", max_results=100)
    by_stage = {}
    for run in runs:
        by_stage.setdefault(run.info.run_name, []).append(run)
    assert set(by_stage) == {"prepare", "validate", "pretrain", "similarity", "select", "adapt", "evaluate"}
    assert all(len(r) == 2 and {x.info.status for x in r} == {"FINISHED"} for r in by_stage.values()), by_stage
    # Two versions of each registered model, one per experiment: one registry, no collision.
    versions = client.search_model_versions("name = 'transferlab-adapted'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
