"""Progress of long work as log lines: what is running, how far it is, how long it has left.

A tqdm bar only helps on a terminal; through a pipe, in a CI log or in the Prefect UI, minutes of
training said nothing. Every long loop therefore also reports through the ``transferlab.progress``
logger, at most one line per ``min_interval_s`` (plus the first and the last), as INFO records
carrying the attribute ``transferlab_progress`` so that a console handler can leave them to the bar
when there is one (:func:`on_terminal`). Nothing is shown until an application configures the
logger (the ``transferlab`` command and the Prefect flow do); a notebook sees only the bar.

Labels nest: a stage, then a trial, then the training run inside it, e.g.
``[select > trial 3/8 r1-03-dann] dann: epoch 2/4, loss 0.412, ...``. They live in a context
variable, so threads started with a copy of the context (Prefect's task runs) keep them.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

LOGGER = logging.getLogger("transferlab.progress")
MARK = "transferlab_progress"  # set on every progress record
MIN_INTERVAL_S = 10.0

_labels: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("transferlab_progress_labels",
                                                                         default=())


def on_terminal() -> bool:
    """Whether stderr is a terminal, where a live bar replaces the progress lines."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


@contextmanager
def labelled(label: str) -> Iterator[None]:
    """Prefix every progress line inside the block with ``label`` (after any outer labels)."""
    token = _labels.set((*_labels.get(), label))
    try:
        yield
    finally:
        _labels.reset(token)


def note(message: str, *args) -> None:
    """One progress line now (no rate limit): a step of a few that each take a while."""
    prefix = " > ".join(_labels.get())
    LOGGER.info("%s%s", f"[{prefix}] " if prefix else "", message % args if args else message, extra={MARK: True})


def clock_text(seconds: float) -> str:
    """0:42, 12:05, 1:02:03."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Rate-limited lines for a loop of ``total`` units (steps, permutations, layers).

    ``initial`` units were done before this process started (a continued run): the ETA is
    extrapolated from the units done here only."""

    def __init__(self, what: str, total: float, *, initial: float = 0.0, min_interval_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.total, self.initial = what, float(total), float(initial)
        self.min_interval_s = MIN_INTERVAL_S if min_interval_s is None else min_interval_s
        self.clock = clock
        self.started = clock()
        self._last: float | None = None

    def eta_s(self, done: float) -> float | None:
        """Seconds left, assuming the remaining units go at the pace of those done so far."""
        ran = done - self.initial
        if ran <= 0:
            return None
        return (self.total - done) * (self.clock() - self.started) / ran

    def update(self, done: float, position: str, detail: str = "", force: bool = False) -> bool:
        """Log ``what: position, detail, elapsed, ETA`` unless a line went out less than
        ``min_interval_s`` ago; the first update, the last unit (``done >= total``) and a ``force``d
        one (an early stop) always go out. True if logged."""
        if not LOGGER.isEnabledFor(logging.INFO):
            return False
        now = self.clock()
        final = done >= self.total
        if not (final or force) and self._last is not None and now - self._last < self.min_interval_s:
            return False
        self._last = now
        eta = self.eta_s(done)
        timing = f"elapsed {clock_text(now - self.started)}"
        if not (final or force):
            timing += f", ETA {clock_text(eta)}" if eta is not None else ", ETA unknown"
        note("%s: %s%s, %s", self.what, position, f", {detail}" if detail else "", timing)
        return True
