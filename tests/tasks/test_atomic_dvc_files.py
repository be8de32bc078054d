"""DVC's own writes of dvc.lock are atomic in the project's environment: a kill half-way through
leaves the last whole lock, never an empty or truncated one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tasks import atomic_dvc_files, recovery

ROOT = Path(__file__).resolve().parents[2]
INJECT = ROOT / "benchmarks" / "chaos_lock_kill"
OLD = {"schema": "2.0", "stages": {"prepare": {"cmd": "transferlab stage prepare"}}}
NEW = {"schema": "2.0", "stages": {f"stage{i}": {"cmd": f"transferlab stage s{i}" * 20} for i in range(50)}}


def _python(code: str, cwd: Path, **extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | extra
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          start_new_session=True, timeout=120)


def test_the_environment_makes_dvcs_writes_atomic_at_start_up(tmp_path):
    proc = _python("import dvc.utils.serialize._yaml as y; print(getattr(y._dump_data, 'transferlab_atomic', 0))",
                   tmp_path)
    assert proc.stdout.strip() == "True", proc.stderr  # make install wrote the .pth file


def test_a_kill_half_way_through_dvcs_lock_write_leaves_the_last_whole_lock(tmp_path):
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(OLD))
    proc = _python(f"from dvc.utils.serialize import dump_yaml; dump_yaml('dvc.lock', {NEW!r})", tmp_path,
                   PYTHONPATH=str(INJECT), CHAOS_KILL_AT_LOCK_WRITE="1")
    assert proc.returncode == -signal.SIGKILL, proc.stderr  # killed inside the write, as intended
    assert yaml.safe_load((tmp_path / "dvc.lock").read_text()) == OLD
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".dvc.lock.tmp-")]
    assert len(left) == 1 and (tmp_path / left[0]).stat().st_size > 0  # the half-written new one
    assert recovery.clean_leftovers(tmp_path) == [f"removed {left[0]} (left by a killed run)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvc.lock"]


def test_a_failed_write_in_process_keeps_the_old_file_and_its_mode(tmp_path):
    from dvc.utils.serialize import _common, _yaml

    atomic_dvc_files.install()
    assert _yaml._dump_data is _common._dump_data and _common._dump_data.transferlab_atomic
    lock = tmp_path / "dvc.lock"
    lock.write_text("old: 1\n")
    lock.chmod(0o640)

    def half_then_fail(data, stream):
        stream.write("new: ")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _common._dump_data(lock, {"new": 1}, dumper=half_then_fail)
    assert lock.read_text() == "old: 1\n" and sorted(p.name for p in tmp_path.iterdir()) == ["dvc.lock"]
    _yaml.dump_yaml(lock, NEW)
    assert yaml.safe_load(lock.read_text()) == NEW and (lock.stat().st_mode & 0o777) == 0o640


class _Lockfile:  # the one thing of DVC's Lockfile the hook relies on: a path and _load
    def __init__(self, path):
        self.path = path

    def _load(self, **kwargs):
        return Path(self.path).read_text()


@pytest.mark.parametrize("ours", [True, False])
def test_dvc_repairs_a_damaged_lock_of_a_transferlab_project_before_reading_it(tmp_path, capsys, ours):
    module = type("dvcfile", (), {"Lockfile": type("Lockfile", (_Lockfile,), {})})
    atomic_dvc_files.repair_before_load(module)
    (tmp_path / "dvc.yaml").write_text("stages:\n  prepare:\n    cmd: " + ("transferlab stage prepare" if ours else "make"))
    (tmp_path / ".dvc" / "tmp").mkdir(parents=True)
    good = yaml.safe_dump(OLD)
    (tmp_path / ".dvc" / "tmp" / "dvc.lock.good").write_text(good)
    (tmp_path / "dvc.lock").write_text("")
    loaded = module.Lockfile(str(tmp_path / "dvc.lock"))._load()
    note = capsys.readouterr().err
    if ours:
        assert loaded == good and note == ("note: dvc.lock was damaged (empty or not a valid lock file): "
                                           "restored the last good copy\n")
    else:  # another DVC project in the same environment: DVC's own behaviour
        assert loaded == "" and note == ""
