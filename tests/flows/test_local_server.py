"""The Prefect server `transferlab run` starts for itself when none is configured."""

import urllib.request

import pytest

from flows.local_server import LocalServer
from transferlab.errors import TransferlabError


def test_it_answers_health_and_stops():
    server = LocalServer()
    try:
        server.wait_ready(timeout_s=120)
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{server.url}/health") as reply:
            assert reply.status == 200
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
