"""Runs that end badly: a setting refused before anything is written, a failed run that leaves
params.yaml as it was, Ctrl-C, and the private Prefect server dying under a run (issue 21)."""

from __future__ import annotations

import copy
import os
import signal
import sqlite3
import subprocess
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.project import BIN, TINY, env, make_project

pytestmark = pytest.mark.e2e

COMMENTED = "# my notes on this experiment\n"


def _run_env(tmp_path) -> dict:
    run_env = {**env(), "PREFECT_HOME": str(tmp_path / "prefect-home")}
    run_env.pop("PREFECT_API_URL", None)
    return run_env


def _nothing_written(project) -> None:
    assert not (project / "data" / "prepared").exists()
    assert not (project / "mlflow.db").exists() and not (project / "models" / "source").exists()


@pytest.mark.parametrize("section, value, message", [
    ("select", {**TINY["select"], "force_method": "finetune"}, "'finetune' needs labelled target samples"),
    ("device", "cuda", "device 'cuda' was requested but no CUDA GPU is available"),
])
def test_a_setting_that_used_to_fail_at_pretrain_fails_before_prepare_writes(tmp_path, section, value, message):
    params = copy.deepcopy(TINY)
    params[section] = value
    project = make_project(tmp_path / "p", params)
    for command in (["stage", "prepare"], ["run"]):
        # No GPU visible, on any machine: the device case runs on GPU machines too.
        proc = subprocess.run([str(BIN / "transferlab"), *command], cwd=project, capture_output=True, text=True,
                              env=env() | {"CUDA_VISIBLE_DEVICES": ""})
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and lines == [lines[0]] and message in lines[0], proc.stderr
        _nothing_written(project)


def test_a_failed_run_leaves_params_yaml_as_it_was_and_a_good_one_keeps_its_comments(tmp_path):
    project = make_project(tmp_path / "p")
    (project / "params.yaml").write_text(COMMENTED + (project / "params.yaml").read_text())
    before = (project / "params.yaml").read_text()
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not a zip")
    proc = subprocess.run([str(BIN / "transferlab"), "run", "--set", f"data.target={{name: npz, path: {corrupt}}}"],
                          cwd=project, env=_run_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "is not a readable .npz file" in proc.stderr
    assert (project / "params.yaml").read_text() == before  # the override was undone with the failure
    _nothing_written(project)
    good = subprocess.run([str(BIN / "transferlab"), "run", "--set", "evaluate.bootstrap=150"], cwd=project,
                          env=_run_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert good.returncode == 0, good.stderr[-2000:]
    text = (project / "params.yaml").read_text()
    assert text.startswith(COMMENTED) and "bootstrap: 150" in text


def _interruptible() -> None:
    # As at a terminal, whatever launched the tests: a shell without job control starts a background
    # command (`cmd &`) with SIGINT ignored, children inherit that, and Python then never raises
    # KeyboardInterrupt, so the Ctrl-C test would measure the shell, not transferlab.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(project, tmp_path) -> subprocess.Popen:
    """`transferlab run` in its own process group; returns once prepare finished."""
    proc = subprocess.Popen([str(BIN / "transferlab"), "run"], cwd=project, env=_run_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=_interruptible)
    for line in proc.stdout:
        if "Task run 'prepare' - Finished" in line:
            break
    time.sleep(2)
    return proc


def _slow_project(tmp_path):
    params = copy.deepcopy(TINY)
    params["pretrain"].update(epochs=200, patience=200)
    return make_project(tmp_path / "p", params)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_ctrl_c_stops_the_run_in_seconds_with_everything_recorded(tmp_path):
    project = _slow_project(tmp_path)
    proc = _start(project, tmp_path)
    server = _children(proc.pid)
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what a Ctrl-C at the terminal sends: the whole foreground group
    rest = proc.stdout.read()
    proc.wait(timeout=60)
    assert time.monotonic() - started < 15
    assert proc.returncode == 130 and rest.strip().splitlines()[-1] == "error: interrupted", rest[-2000:]
    assert "Traceback" not in rest
    time.sleep(1)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in server)  # the private server went with it
    with sqlite3.connect(tmp_path / "prefect-home" / "prefect.db") as db:
        assert db.execute("SELECT state_type FROM flow_run").fetchall() == [("CANCELLED",)]
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("transferlab").experiment_id])
    status = {r.info.run_name: r.info.status for r in runs if r.data.tags.get("transferlab.role") == "stage"}
    # pretrain opens its MLflow run after training: interrupted in training, it recorded nothing
    assert status.get("pretrain") in (None, "KILLED") and "RUNNING" not in {r.info.status for r in runs}
    assert not list(project.rglob(".*.tmp-*"))


def test_the_private_server_dying_mid_run_is_one_line_not_a_hang(tmp_path):
    project = _slow_project(tmp_path)
    proc = _start(project, tmp_path)
    (server,) = _children(proc.pid)
    started = time.monotonic()
    os.kill(server, signal.SIGKILL)
    rest = proc.stdout.read()
    proc.wait(timeout=60)
    assert time.monotonic() - started < 20
    errors = [line for line in rest.splitlines() if line.startswith("error:")]
    assert proc.returncode != 0 and errors == [errors[-1]] and "Prefect server stopped during the run" in errors[0]


def test_the_private_server_dies_with_a_killed_command(tmp_path):
    project = _slow_project(tmp_path)
    proc = _start(project, tmp_path)
    (server,) = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)  # as the OOM killer does: no handler runs
    proc.wait()
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{server}") and time.monotonic() < deadline:
        time.sleep(0.2)
        with open(f"/proc/{server}/stat") as stat:
            if stat.read().split()[2] == "Z":  # exited; only its reaper is gone
                break
    assert not os.path.exists(f"/proc/{server}") or open(f"/proc/{server}/stat").read().split()[2] == "Z"
    # The next run closes what the dead one left RUNNING, in MLflow and in Prefect.
    again = subprocess.run([str(BIN / "transferlab"), "run", "--set", "pretrain={epochs: 2, batch_size: 64, lr: 0.002, "
                            "weight_decay: 0.0, patience: 2}"], cwd=project, env=_run_env(tmp_path),
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "of a dead process marked Crashed" in again.stderr, again.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("transferlab").experiment_id
    assert client.search_runs([exp], "attributes.status = 'RUNNING'") == []
    with sqlite3.connect(tmp_path / "prefect-home" / "prefect.db") as db:
        states = sorted(s for (s,) in db.execute("SELECT state_type FROM flow_run"))
    assert states == ["COMPLETED", "CRASHED"]

