"""The Prefect server `transferlab run` starts for itself when none is configured."""

import os

import pytest
from prefect.utilities.urls import url_for

from flows.local_server import LocalServer, answers_health
from transferlab.errors import TransferlabError


def test_it_answers_health_and_stops():
    server = LocalServer()
    try:
        server.wait_ready(timeout_s=120)
        assert answers_health(server.url)
        process = server.process
    finally:
        server.stop()
    assert process.returncode is not None  # gone, not left behind
    assert server.process is None
    server.stop()  # a second stop is harmless


def test_a_server_that_dies_is_a_one_line_error():
    server = LocalServer()
    server.process.kill()
    server.process.wait()
    with pytest.raises(TransferlabError, match="temporary Prefect server exited with code -9"):
        server.wait_ready(timeout_s=30)
    assert server.process is None


class _FakeServer:
    url = "http://127.0.0.1:1/api"

    def __init__(self):
        self.calls = []

    def wait_ready(self):
        self.calls.append("wait_ready")

    def stop(self, grace_s=1.0):
        self.calls.append("stop")


def test_the_flow_talks_to_the_server_the_command_started(monkeypatch):
    from prefect.settings import get_current_settings

    from flows import cli

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    server = _FakeServer()
    with cli._prefect_api(server):
        # Process-wide, so that Prefect's own threads see it too; heartbeats off for a private server.
        assert os.environ["PREFECT_API_URL"] == server.url
        assert get_current_settings().api.url == server.url
        assert get_current_settings().flows.heartbeat_frequency is None
    assert server.calls == ["wait_ready"]
    assert "PREFECT_API_URL" not in os.environ
    assert get_current_settings().api.url != server.url


def test_a_server_named_by_prefect_settings_wins_over_the_one_started(monkeypatch):
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    from flows import cli

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    server = _FakeServer()
    cli._SERVER.append(server)
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):  # e.g. from a profile
        with cli._prefect_api(server):
            assert get_current_settings().api.url == "http://127.0.0.1:4200/api"
            # The user's server serves its UI: the flow run's "View at" link stays.
            assert url_for("flow-run", obj_id="abc") == "http://127.0.0.1:4200/runs/flow-run/abc"
    assert server.calls == ["stop"] and server not in cli._SERVER


def test_the_private_server_gets_no_view_at_link(monkeypatch):
    """Prefect derives a UI link from the API URL and prints "View at <link>" as a flow run begins;
    the private server serves no UI, so that link would be a 404."""
    from flows import cli

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_UI_URL", raising=False)
    with cli._prefect_api(_FakeServer()):
        assert url_for("flow-run", obj_id="abc") is None  # what flow_engine checks before printing it


class _Server:
    """What cli._stop_temporary_server needs of a LocalServer: exit_code() and stop()."""

    def __init__(self, process) -> None:
        self.process, self.stopped = process, False

    exit_code = LocalServer.exit_code

    def stop(self, grace_s: float) -> None:
        self.process.kill()
        self.process.wait()
        self.stopped = True


@pytest.mark.parametrize("dead", [False, True])
def test_exit_delivers_prefects_queues_only_to_a_live_server(monkeypatch, dead):
    import subprocess
    import sys

    from prefect._internal.concurrency.services import QueueService

    from flows import cli

    drained = []
    monkeypatch.setattr(QueueService, "drain_all", classmethod(lambda cls, timeout=None: drained.append(timeout)))
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    if dead:
        process.kill()
        process.wait()
    server = _Server(process)
    monkeypatch.setattr(cli, "_SERVER", [server])
    # A dead server's queues would be retried against for seconds (once 80 s): skip them and the exit hooks.
    assert cli._stop_temporary_server() is (not dead)
    assert drained == ([] if dead else [5.0]) and server.stopped and cli._SERVER == []
