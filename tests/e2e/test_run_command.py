"""`transferlab run`, the command `make run` calls: the whole DAG through Prefect with no Prefect
server configured, so the command brings its own and takes it down again."""

from __future__ import annotations

import re
import copy
import socket
import sqlite3
import subprocess

import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.project import BIN, TINY, env, make_project

pytestmark = pytest.mark.e2e


def _run(project, tmp_path):
    run_env = {**env(), "PREFECT_HOME": str(tmp_path / "prefect-home")}
    run_env.pop("PREFECT_API_URL", None)
    proc = subprocess.run([str(BIN / "transferlab"), "run"], cwd=project, env=run_env, capture_output=True,
                          text=True, timeout=600)
    started = re.search(r"http://127\.0\.0\.1:(\d+)/runs/flow-run/", proc.stdout + proc.stderr)
    if started:  # the server is gone with the command, whatever its outcome
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", int(started.group(1)))) != 0
    return proc


def test_run_brings_its_own_prefect_server_and_leaves_nothing_running(tmp_path):
    project = make_project(tmp_path / "proj")
    proc = _run(project, tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "pipeline finished" in proc.stdout and "transfer gain" in proc.stdout

    # The flow run went to that server, whose database lives in PREFECT_HOME, and completed.
    with sqlite3.connect(tmp_path / "prefect-home" / "prefect.db") as db:
        flow_runs = db.execute("SELECT id, state_type FROM flow_run").fetchall()
        task_runs = db.execute("SELECT name, state_type FROM task_run").fetchall()
    assert len(flow_runs) == 1 and flow_runs[0][1] == "COMPLETED"
    assert len(task_runs) == 7 and {state for _, state in task_runs} == {"COMPLETED"}

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    stages = client.search_runs([client.get_experiment_by_name("transferlab").experiment_id],
                                "tags.`transferlab.role` = 'stage'")
    assert len(stages) == 7
    assert {r.data.tags["prefect.flow_run_id"] for r in stages} == {flow_runs[0][0]}


def test_a_data_error_ends_the_run_in_one_line_and_leaves_no_store(tmp_path):
    params = copy.deepcopy(TINY)
    params["data"]["target"] = {"name": "usps", "path": str(tmp_path / "missing")}
    project = make_project(tmp_path / "proj", params)
    proc = _run(project, tmp_path)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "missing" in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    # The preflight refuses the data before any flow run exists (the server starts beside it, for speed).
    assert "/runs/flow-run/" not in proc.stdout + proc.stderr
    db = tmp_path / "prefect-home" / "prefect.db"
    if db.exists():
        with sqlite3.connect(db) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "flow_run" in tables:
                assert conn.execute("SELECT count(*) FROM flow_run").fetchone()[0] == 0
    assert not (project / "mlflow.db").exists()
    assert not (project / "data" / "prepared").exists()
