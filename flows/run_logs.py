"""transferlab's own log lines (per-epoch progress, similarity steps, trials) in the Prefect UI.

The stages run inside the flow's process (flows/pipeline.py), in the thread of their task run, so
a record logged there belongs to that task run: Prefect's API handler on the ``transferlab``
logger files it under the task run's logs (a selection trial's under the trial's task run). Done
here rather than through PREFECT_LOGGING_EXTRA_LOGGERS because that setting must be in the
environment before Prefect is imported, and would not set the level: the logger's effective level
is the root's WARNING, which would drop INFO lines before any handler saw them.

On the terminal, Prefect's console handler would print the same lines between the redraws of the
tqdm bar, which already shows them: there the lines go to the API only.
"""

from __future__ import annotations

import functools
import logging
from contextlib import contextmanager
from typing import Iterator

from transferlab import progress

LOGGER_NAME = "transferlab"


@functools.cache
def _api_handler_class():
    from prefect.logging.handlers import APILogHandler

    class RunLogHandler(APILogHandler):
        """Prefect's API handler, silent outside a flow or task run (a thread Prefect did not start,
        a library call after the flow) instead of warning about the missing run."""

        def emit(self, record: logging.LogRecord) -> None:
            from prefect.context import FlowRunContext, TaskRunContext

            if TaskRunContext.get() is None and FlowRunContext.get() is None:
                return
            super().emit(record)

    return RunLogHandler


class BarOnTerminal(logging.Filter):
    """Drops progress lines while stderr is a terminal, where the bar shows the same numbers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (getattr(record, progress.MARK, False) and progress.on_terminal())


_BAR_FILTER = BarOnTerminal()


def _console_handlers() -> list[logging.Handler]:
    from prefect.logging.handlers import PrefectConsoleHandler

    return [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]


@contextmanager
def _to_api(name: str) -> Iterator[logging.Logger]:
    """INFO lines of logger ``name`` also go to the Prefect API, attached to the current task run."""
    from prefect.logging.handlers import APILogHandler

    logger = logging.getLogger(name)
    added = None
    if not any(isinstance(h, APILogHandler) for h in logger.handlers):  # e.g. PREFECT_LOGGING_EXTRA_LOGGERS
        added = _api_handler_class()()
        logger.addHandler(added)
    level, propagate = logger.level, logger.propagate
    if level == logging.NOTSET or level > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield logger
    finally:
        logger.setLevel(level)
        logger.propagate = propagate
        if added is not None:
            logger.removeHandler(added)


@contextmanager
def forwarded_to_prefect() -> Iterator[None]:
    """For the length of a flow run: INFO lines of the ``transferlab`` loggers go to the Prefect API,
    attached to the current task run, and to the console when it is not a terminal; so do DVC's
    ("Updating lock file 'dvc.lock'"), printed once on the console."""
    consoles = [h for h in _console_handlers() if _BAR_FILTER not in h.filters]
    for handler in consoles:
        handler.addFilter(_BAR_FILTER)
    try:
        with _to_api(LOGGER_NAME), _to_api("dvc") as dvc_logger:
            # DVC prints its lines with handlers of its own (set up when dvc is imported) and also
            # passed them on to the root logger, where Prefect's console handler printed each again.
            from prefect.logging.handlers import APILogHandler

            if any(not isinstance(h, APILogHandler) for h in dvc_logger.handlers):
                dvc_logger.propagate = False
            yield
    finally:
        for handler in consoles:
            handler.removeFilter(_BAR_FILTER)


def to_stderr() -> None:
    """For ``transferlab stage`` (run by ``dvc repro``, or in a pipe): the same lines on stderr, unless
    stderr is a terminal, where the bar shows them."""
    logger = logging.getLogger(LOGGER_NAME)
    if any(getattr(h, "transferlab_stderr", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()  # sys.stderr at emit time
    handler.transferlab_stderr = True
    handler.addFilter(_BAR_FILTER)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.propagate = False  # a root handler someone configured would print each line twice
