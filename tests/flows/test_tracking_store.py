"""The MLflow store `transferlab run` prepares in a child process during start-up."""

import sqlite3

from flows.tracking_store import TrackingStoreSetup


def test_a_new_store_is_made_and_dropped_again_if_nothing_was_recorded(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    db = tmp_path / "mlflow.db"
    setup = TrackingStoreSetup(tmp_path)
    setup.wait()
    assert setup.process.returncode == 0
    with sqlite3.connect(db) as conn:  # the schema is in place before any stage logs
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"experiments", "runs", "registered_models", "model_versions"} <= tables
    setup.discard_if_unused()
    assert not db.exists()


def test_a_store_holding_a_run_is_never_dropped(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    setup = TrackingStoreSetup(tmp_path)
    setup.wait()
    with sqlite3.connect(tmp_path / "mlflow.db") as conn:
        conn.execute("INSERT INTO runs (run_uuid, experiment_id, lifecycle_stage) VALUES ('r1', 0, 'active')")
    setup.discard_if_unused()
    assert (tmp_path / "mlflow.db").exists()


def test_an_existing_or_remote_store_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "mlflow.db").write_bytes(b"")  # somebody's store: not ours to make or remove
    setup = TrackingStoreSetup(tmp_path)
    assert setup.process is None
    setup.discard_if_unused()
    assert (tmp_path / "mlflow.db").exists()

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    remote = TrackingStoreSetup(tmp_path / "other")
    assert remote.process is None and remote.db is None
