"""Pausing a training run and continuing it later, exactly where it stopped.

Successive halving trains its surviving trials further in each round. Restarting a survivor
from the source model would throw away what the earlier rounds paid for; continuing it gives
the finalists the sum of their rounds' training for the same budget (Li et al. 2018, Hyperband
with resumable trials). A run is continued by calling the same method again, with the same
data, hyperparameters and settings, inside :func:`continuing`: the loop then loads the saved
weights, optimiser moments, batch-stream positions and random state instead of starting
afresh, so pausing after some steps and continuing gives the same weights as never pausing.

The hand-over goes through a context variable rather than through every method's signature:
each method reaches the one loop (:func:`transferlab.training.loop.run_training`) exactly
once per fit, and none of them needs to know it is being continued.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass
class RunState:
    """Everything the loop needs to go on: tensors are CPU copies, never shared with a live model."""

    steps_per_epoch: int
    horizon: int  # the steps the lr and warm-up schedules are laid out over
    step: int
    model: dict[str, Any]
    aux: list[dict[str, Any]]
    optimiser: dict[str, Any]
    streams: dict[str, dict[str, Any]]
    torch_rng: Any
    history: list[dict] = field(default_factory=list)
    best_score: float = float("-inf")
    best_epoch: int = 0
    best_state: dict[str, Any] | None = None
    since_best: int = 0
    stopped_early: bool = False


class Continuation:
    """Carries a run's state between fits: ``state`` is read when a fit starts (None: start
    afresh) and replaced by the run's state when it ends."""

    def __init__(self, state: RunState | None = None):
        self.state = state
        self.used = False


_CURRENT: ContextVar[Continuation | None] = ContextVar("transferlab_continuation", default=None)


@contextmanager
def continuing(continuation: Continuation) -> Iterator[Continuation]:
    """Within this block the (single) training run starts from, and saves into, ``continuation``."""
    continuation.used = False
    token = _CURRENT.set(continuation)
    try:
        yield continuation
    finally:
        _CURRENT.reset(token)


def current_continuation() -> Continuation | None:
    """The continuation of the enclosing :func:`continuing` block, claimed by the one run in it."""
    continuation = _CURRENT.get()
    if continuation is None:
        return None
    if continuation.used:
        raise RuntimeError("two training runs inside one continuing() block: a continuation belongs to one run")
    continuation.used = True
    return continuation
