"""`transferlab run`, the command `make run` calls: the whole DAG through Prefect with no Prefect
server configured, so the command brings its own and takes it down again."""

from __future__ import annotations

import re
import copy
import sqlite3
import subprocess
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.project import BIN, TINY, env, make_project

pytestmark = pytest.mark.e2e


def _processes_with_env(entry: bytes) -> list[int]:
    """Processes whose environment holds ``entry`` (the server inherits the command's PREFECT_HOME)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if entry in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:  # gone, or not ours
            continue
    return found


def _run(project, tmp_path):
    home = tmp_path / "prefect-home"
    run_env = {**env(), "PREFECT_HOME": str(home)}
    run_env.pop("PREFECT_API_URL", None)
    proc = subprocess.run([str(BIN / "transferlab"), "run"], cwd=project, env=run_env, capture_output=True,
                          text=True, timeout=600)
    # The private server serves no UI: no "View at" link to a 404; and it is gone with the command,
    # whatever its outcome.
    assert "/runs/flow-run/" not in proc.stdout + proc.stderr
    assert _processes_with_env(f"PREFECT_HOME={home}".encode()) == []
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
    with sqlite3.connect(tmp_path / "prefect-home" / "prefect.db") as db:
        progress = db.execute("SELECT task_run.name, log.message FROM log JOIN task_run ON log.task_run_id = "
                              "task_run.id WHERE log.name = 'transferlab.progress'").fetchall()
    # Per-epoch lines, with the ETA, in the logs of the task run they belong to (the Prefect UI shows them).
    assert any(name == "pretrain" and re.match(r"\[pretrain\] train: epoch 1/2, .*ETA \d+:\d\d$", message)
               for name, message in progress), progress
    assert any(name == "similarity" and "MMD test on the source model's" in message for name, message in progress)
    # stderr is a pipe here: the same lines are printed; DVC's lock update once per stage that ran.
    assert re.search(r"\[adapt\] dann: epoch 2/2, loss .*checkpoint score", proc.stderr)
    assert (proc.stdout + proc.stderr).count("Updating lock file") == len(task_runs)  # was 14: printed twice

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    stages = client.search_runs([client.get_experiment_by_name("transferlab").experiment_id],
                                "tags.`transferlab.role` = 'stage'")
    assert len(stages) == 7
    assert {r.data.tags["prefect.flow_run_id"] for r in stages} == {flow_runs[0][0]}
    assert {r.data.tags["mlflow.source.name"] for r in stages} == {
        f"transfer-pipeline (Prefect flow run) in {project.resolve()}"}


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
