"""A Prefect API server for one ``transferlab run`` when no server is configured.

Left alone, Prefect starts its temporary server on the flow's first API call, after every import,
and the flow waits about 5 s for it on this machine. It also imports the server's own code
(FastAPI app, ORM models: 2.4 s) into the client just to launch it. Here the same server
command starts as the first thing ``transferlab run`` does, as a plain subprocess, so it comes up
while this process imports torch, sklearn and Prefect, and this process never loads server code.
"""

from __future__ import annotations

import _thread
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from transferlab.errors import TransferlabError

# What Prefect's SubprocessASGIServer sets for its temporary server: no UI, ephemeral mode.
PR_SET_PDEATHSIG = 1  # linux/prctl.h
SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}


# Straight to 127.0.0.1, whatever proxy the environment names.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers_health(api_url: str) -> bool:
    """Whether a Prefect API at ``api_url`` answers its /health endpoint now."""
    try:
        with _DIRECT.open(f"{api_url}/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def _prefect_parent_dir() -> str:
    spec = importlib.util.find_spec("prefect")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise TransferlabError("prefect is not installed in this environment")
    return str(Path(list(spec.submodule_search_locations)[0]).parent)


def _die_with_parent(parent: int):
    """A pre-exec hook: the child gets SIGTERM when its parent dies (Linux's PR_SET_PDEATHSIG), even
    by SIGKILL or the OOM killer, so the server never outlives the command that started it."""
    def hook() -> None:
        if sys.platform.startswith("linux"):
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the hook ran
            os._exit(1)
    return hook


class LocalServer:
    """``uvicorn prefect.server.api.server:create_app`` on a free local port, owned by this process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        # A file, not a pipe: a pipe nobody reads would block the server once it fills.
        self._log = tempfile.TemporaryFile()
        self.process: subprocess.Popen | None = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", _prefect_parent_dir(), "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "error", "--lifespan", "on"],
            env={**os.environ, **SERVER_ENV}, stdout=subprocess.DEVNULL, stderr=self._log,
            # Its own session: a Ctrl-C at the terminal interrupts the run, not the server that has to
            # record the interruption; and it dies with this process, however this process ends.
            start_new_session=True, preexec_fn=_die_with_parent(os.getpid()),
        )

    def exit_code(self) -> int | None:
        """The server process's exit code once it has died; None while it runs or after :meth:`stop`."""
        process = self.process
        return None if process is None else process.poll()

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        """Block until the server answers /health; a clear error if it exits or never answers."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None:
                raise TransferlabError("the temporary Prefect server was already stopped")
            code = self.process.poll()
            if code is not None:
                self._log.seek(0)
                tail = self._log.read().decode(errors="replace").strip().splitlines()[-1:]
                self.stop()
                raise TransferlabError(f"the temporary Prefect server exited with code {code}"
                                       + (f": {tail[0]}" if tail else ""))
            if answers_health(self.url):
                return
            time.sleep(0.1)
        self.stop()
        raise TransferlabError(f"the temporary Prefect server did not answer within {timeout_s:.0f} s; "
                               "start one with `prefect server start` and set PREFECT_API_URL")

    def stop(self, grace_s: float = 1.0) -> None:
        """Terminate, then kill after ``grace_s``. By now the flow has finished and the server has
        committed every state to its SQLite database; what it would still do in a longer grace is
        wait on the client's event websocket."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self._log.close()


class ServerWatch:
    """Notices the server dying under a running flow, which would otherwise leave the Prefect client
    retrying for minutes: the main thread is interrupted (the run stops, its MLflow runs are closed),
    and if it has not ended within ``grace_s`` the process exits with one line."""

    def __init__(self, server: LocalServer, grace_s: float = 5.0) -> None:
        self.server, self.grace_s = server, grace_s
        self.exit_code: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="prefect-server-watch", daemon=True)

    def __enter__(self) -> "ServerWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()

    def message(self) -> str:
        return (f"the temporary Prefect server stopped during the run (exit code {self.exit_code}); the run "
                "was stopped: run the same command again")

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            if (code := self.server.exit_code()) is None:
                continue
            self.exit_code = code
            # Everything Prefect would still say is about the server being gone, many lines a second.
            logging.disable(logging.CRITICAL)
            _thread.interrupt_main()
            if not self._stop.wait(self.grace_s):
                print(f"error: {self.message()}", file=sys.stderr, flush=True)
                os._exit(1)
            return
