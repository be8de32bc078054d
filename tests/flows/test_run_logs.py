"""What the Prefect UI shows of a run: progress lines under their task run, skipped stages marked."""

from __future__ import annotations

import io
import logging
import sys

import pytest
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterTaskRunId
from prefect.testing.utilities import prefect_test_harness

from flows import pipeline, run_logs
from transferlab import progress


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@task(name="train-something")
def _train() -> str:
    from prefect.runtime import task_run

    with progress.labelled("pretrain"):
        p = progress.Progress("train", 2, min_interval_s=0.0)
        p.update(1, "epoch 1/2", "loss 0.5")
        p.update(2, "epoch 2/2", "loss 0.3")
    return task_run.get_id()


@flow
def _flow_with_forwarding() -> str:
    with run_logs.forwarded_to_prefect():
        return _train()


def test_progress_lines_reach_the_logs_of_the_task_run_they_happen_in(harness, monkeypatch):
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stderr", pipe)  # not a terminal: the console shows the lines too
    task_run_id = _flow_with_forwarding()
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # the logs go to the server in batches
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(task_run_id=LogFilterTaskRunId(any_=[task_run_id])), limit=50, offset=0)
    messages = [log.message for log in logs if log.name == "transferlab.progress"]
    assert len(messages) == 2
    assert messages[0].startswith("[pretrain] train: epoch 1/2, loss 0.5, elapsed 0:00, ETA")
    # Only for the flow's length: afterwards the library is as quiet as before.
    assert not any(isinstance(h, APILogHandler) for h in logging.getLogger("transferlab").handlers)
    assert logging.getLogger("transferlab").level == logging.NOTSET


def test_on_a_terminal_the_console_leaves_progress_to_the_bar(monkeypatch):
    record = logging.LogRecord("transferlab.progress", logging.INFO, __file__, 1, "epoch 1/2", None, None)
    setattr(record, progress.MARK, True)
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    assert not run_logs.BarOnTerminal().filter(record)
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    assert run_logs.BarOnTerminal().filter(record)


def test_a_stage_dvc_skipped_is_marked_cached_with_the_reason(harness, monkeypatch, tmp_path):
    import dvc.repo

    monkeypatch.setattr(dvc.repo, "Repo", lambda path: object())
    monkeypatch.setattr(pipeline, "_run_if_changed", lambda repo, name, hooks: None)  # DVC: nothing changed

    @flow
    def one_stage():
        return (pipeline.run_stage(name="pretrain", project_dir=str(tmp_path), return_state=True),
                pipeline.stage_outcome("pretrain", str(tmp_path)))

    state, value = one_stage()
    assert state.is_completed() and state.name == "Cached"
    assert "nothing changed since the last run" in state.message
    assert value == pipeline.SKIPPED  # what the flow's summary of stages gets, as the flow calls it


def test_dvc_lines_are_printed_once_and_reach_the_prefect_api(harness, monkeypatch):
    """DVC's own handlers print "Updating lock file"; passed on to the root logger, Prefect's console
    handler printed it a second time."""
    import dvc.repo  # noqa: F401 - importing DVC sets up its handlers
    from prefect.logging.handlers import APILogHandler

    dvc_logger = logging.getLogger("dvc")
    assert dvc_logger.handlers and dvc_logger.propagate
    printed, sent = [], []
    # The handlers hold the streams they were given at set-up: count what reaches them instead.
    for handler in {*dvc_logger.handlers, *logging.getLogger().handlers}:
        if not isinstance(handler, APILogHandler):
            monkeypatch.setattr(handler, "emit", lambda record: printed.append(record.getMessage()))
    monkeypatch.setattr(APILogHandler, "emit", lambda self, record: sent.append(record.getMessage()))

    @flow
    def lock_written():
        with run_logs.forwarded_to_prefect():
            logging.getLogger("dvc.dvcfile").info("Updating lock file '%s'", "dvc.lock")

    lock_written()
    assert printed.count("Updating lock file 'dvc.lock'") == 1
    assert sent.count("Updating lock file 'dvc.lock'") == 1  # and the Prefect UI has it
    assert dvc_logger.propagate  # put back after the flow
