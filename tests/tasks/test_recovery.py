"""What a killed run leaves is put right by the next start (tasks/recovery.py)."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from tasks import recovery, tracking


def test_leftover_temporaries_are_removed_and_an_interrupted_replace_is_undone(tmp_path):
    prepared = tmp_path / "data/prepared"
    (prepared / ".source.tmp-k2j4").mkdir(parents=True)
    (prepared / ".target.old-4242").mkdir()
    (prepared / ".target.old-4242" / "unlabelled.npz").write_text("previous")
    (tmp_path / "models/source").mkdir(parents=True)
    (tmp_path / "models/.source.old-77").mkdir()
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/.evaluation.json.tmp-x1y2").write_text("{")
    (tmp_path / "reports/.gitignore").write_text("keep me")
    (tmp_path / "data/.scans.tmp-abcd").mkdir()
    notes = recovery.clean_leftovers(tmp_path)
    assert (prepared / "target/unlabelled.npz").read_text() == "previous"
    assert not (prepared / ".source.tmp-k2j4").exists() and not (tmp_path / "models/.source.old-77").exists()
    assert not (tmp_path / "reports/.evaluation.json.tmp-x1y2").exists() and not (tmp_path / "data/.scans.tmp-abcd").exists()
    assert (tmp_path / "reports/.gitignore").exists() and (tmp_path / "models/source").exists()
    assert len(notes) == 5 and any(n.startswith("restored data/prepared/target") for n in notes)
    assert recovery.clean_leftovers(tmp_path) == []


def test_a_damaged_dvc_lock_is_restored_from_the_last_good_copy_or_set_aside(tmp_path):
    (tmp_path / ".dvc/tmp").mkdir(parents=True)
    good = "schema: '2.0'\nstages:\n  prepare:\n    cmd: transferlab stage prepare\n"
    (tmp_path / "dvc.lock").write_text(good)
    recovery.save_good_lock(tmp_path)
    assert recovery.repair_dvc_lock(tmp_path) is None
    for damage in ("", "schema: '2.0'\nstages:\n  prepare:\n    cmd: [unclosed", "schema: '2.0'\nstages:\n  prepare:\n    cmd: x\n    outs:\n    - pa"):
        (tmp_path / "dvc.lock").write_text(damage)
        recovery.save_good_lock(tmp_path)  # a damaged lock never overwrites the good copy
        assert "restored the last good copy" in recovery.repair_dvc_lock(tmp_path)
        assert (tmp_path / "dvc.lock").read_text() == good
    (tmp_path / ".dvc/tmp/dvc.lock.good").unlink()
    (tmp_path / "dvc.lock").write_text("")
    assert "set aside" in recovery.repair_dvc_lock(tmp_path)
    assert not (tmp_path / "dvc.lock").exists() and (tmp_path / "dvc.lock.damaged").exists()


def test_runs_of_a_dead_attempt_are_failed_and_their_versions_abandoned(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    exp_id = tracking.configure(tmp_path, "exp")
    client = MlflowClient()
    owner = {"transferlab.project": str(tmp_path.resolve())}
    dead = client.create_run(exp_id, tags={**owner, "transferlab.pid": "999999999"}).info.run_id
    other_project = client.create_run(exp_id, tags={"transferlab.project": "/elsewhere", "transferlab.pid": "1"})
    import os

    alive = client.create_run(exp_id, tags={**owner, "transferlab.pid": str(os.getpid())}).info.run_id
    client.create_registered_model("m")
    client.create_model_version("m", "file:///nowhere", run_id=dead)
    notes = recovery.close_orphan_runs(tmp_path, "exp")
    assert client.get_run(dead).info.status == "FAILED"
    assert client.get_run(dead).data.tags["transferlab.orphaned"] == "true"
    assert client.get_run(other_project.info.run_id).info.status == "RUNNING"
    assert client.get_run(alive).info.status == "RUNNING"
    assert client.get_model_version("m", "1").tags["transferlab.abandoned"] == "true"
    assert len(notes) == 2
    assert recovery.close_orphan_runs(tmp_path, "exp") == []


def test_without_a_store_there_is_nothing_to_close(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert recovery.close_orphan_runs(tmp_path, "exp") == []
    assert not (tmp_path / "mlflow.db").exists()
    assert recovery.recover(tmp_path) == []
    assert Path(tmp_path).exists()
