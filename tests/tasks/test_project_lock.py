"""One run per project: the lock refuses a second run in one line and dies with its holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks.project_lock import ProjectBusy, hold, lock_path

ROOT = Path(__file__).resolve().parents[2]
HOLDER = "import sys, time; from tasks.project_lock import hold\nwith hold(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n"


def _holder(project: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(project)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_holder_is_refused_with_the_first_ones_pid_until_it_dies(tmp_path):
    (tmp_path / ".dvc").mkdir()
    proc = _holder(tmp_path)
    try:
        with pytest.raises(ProjectBusy, match=rf"another run holds .* \(pid {proc.pid}, started .*--wait"):
            with hold(tmp_path):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)  # as the OOM killer would: no clean-up code runs
        proc.wait()
    with hold(tmp_path):  # the kernel released it with its holder: no stale lock
        with hold(tmp_path):  # re-entrant in one process (the CLI, then the flow it runs)
            pass
    assert lock_path(tmp_path) == tmp_path / ".dvc/tmp/transferlab-run.lock"


def test_wait_blocks_until_the_holder_ends(tmp_path):
    proc = _holder(tmp_path)
    start = time.monotonic()
    subprocess.Popen(["sh", "-c", f"sleep 1; kill {proc.pid}"])
    with hold(tmp_path, wait=True):
        assert time.monotonic() - start >= 0.9
    proc.wait()


def test_transferlab_run_is_refused_at_once_in_one_line(tmp_path, capsys):
    from flows.cli import main

    proc = _holder(tmp_path)
    try:
        start = time.monotonic()
        assert main(["run", "--project", str(tmp_path)]) == 2
        assert time.monotonic() - start < 5
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"pid {proc.pid}" in err


DVC_HOLDER = ("import sys, time; from tasks.project_lock import hold; from dvc.lock import Lock\n"
              "with hold(sys.argv[1]):\n    lock = Lock(sys.argv[1] + '/.dvc/tmp/lock'); lock.lock()\n"
              "    print('held', flush=True)\n    time.sleep(60)\n")


def test_dvc_repro_during_a_run_names_the_run_in_one_line(tmp_path):
    dvc = Path(sys.executable).with_name("dvc")
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text("stages:\n  prepare:\n    cmd: transferlab stage prepare\n")
    proc = subprocess.Popen([sys.executable, "-c", DVC_HOLDER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        repro = subprocess.run([dvc, "repro"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    lines = [line for line in repro.stderr.splitlines() if line.strip()]
    assert repro.returncode != 0 and len(lines) == 1, repro.stderr
    assert f"another run holds {tmp_path.resolve()} (pid {proc.pid}, started" in lines[0]


def test_the_champion_contest_lets_one_evaluate_in_at_a_time(tmp_path):
    """A second contest on the same project waits until the first has moved the alias."""
    import threading

    from tasks.project_lock import champion_contest

    order: list[str] = []
    entered = threading.Event()

    def second():
        entered.wait()
        with champion_contest(tmp_path):
            order.append("second")

    thread = threading.Thread(target=second)
    thread.start()
    with champion_contest(tmp_path):
        entered.set()
        thread.join(0.3)
        assert thread.is_alive()  # blocked while the first holds it
        order.append("first")
    thread.join(5)
    assert order == ["first", "second"]
