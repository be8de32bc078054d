"""The order a round's trials are handed to the runner: the longest first.

A round ends when its last trial does. With W workers taking trials in the order they were
submitted, a list sorted longest-first (Graham's LPT rule, 1969) finishes within
4/3 − 1/(3W) of the best possible makespan; in the arms' order, one long trial submitted last
can add nearly its whole length to the round. Measured on MNIST → USPS with 2 Dask workers
(benchmarks/scale.py), round 1 put cdan, its longest trial, last: 13.9 s against 9.9 s
longest-first. Results still come back in the arms' order, and each trial seeds itself and
reads no other trial's state, so the order changes the wall time and nothing else.

The first round has measured nothing yet. Its estimate is the steps a trial will train (one
pass over the largest set the method trains on, as the training loop counts them, times the
epochs it has left) times the method's ``relative_step_cost``, measured against dann by
benchmarks/method_step_time.py. Later rounds scale the seconds per epoch that the arm's own
previous trial took.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from transferlab.data.adaptation import AdaptationData
from transferlab.errors import MethodRequirementError
from transferlab.methods import get_method
from transferlab.training import TrainSettings
from transferlab.training.batches import steps_per_epoch


def prior_cost(method: str, data: AdaptationData, settings: TrainSettings, epochs: float) -> float:
    """Dann-step equivalents of training ``method`` for ``epochs`` more epochs (summed over folds)."""
    cls = get_method(method)
    try:
        cls.check_data(data)
    except MethodRequirementError:
        return 0.0  # refuses at once
    if not cls.trains:
        return 0.0
    # check_data passed: a method that uses source data has some.
    sizes = [n for uses, n in ((cls.uses_source, len(data.source_train) if cls.uses_source else 0),
                               (cls.uses_unlabelled_target, data.n_target_unlabelled),
                               (cls.needs_target_labels, data.n_target_labels)) if uses and n]
    steps = steps_per_epoch(sizes or [1], settings.batch_size, settings.min_steps_per_epoch,
                            settings.max_steps_per_epoch)
    return steps * cls.relative_step_cost * epochs


def measured_cost(runtime_s: float, epochs_trained: float, epochs: float) -> float:
    """Seconds a continued trial should take, from its previous trial's ``runtime_s`` for
    ``epochs_trained`` epochs; an arm that trained nothing costs what its scoring took."""
    if epochs_trained <= 0:
        return runtime_s
    return runtime_s / epochs_trained * epochs


def longest_first(costs: list[float]) -> list[int]:
    """Indices by decreasing cost; equal costs keep their given order (a stable sort)."""
    return sorted(range(len(costs)), key=lambda k: -costs[k])


def map_in_order(map_fn: Callable[[Callable, list], Iterable[Any]], fn: Callable[[Any], Any], jobs: list,
                 order: list[int]) -> list[Any]:
    """``map_fn(fn, jobs)`` with the jobs submitted in ``order``; results in the jobs' own order."""
    submitted = list(map_fn(fn, [jobs[k] for k in order]))
    if len(submitted) != len(jobs):
        return submitted  # the caller reports the count mismatch
    results: list[Any] = [None] * len(jobs)
    for k, res in zip(order, submitted):
        results[k] = res
    return results
