"""Work time versus overhead: stages wrap their real work (loading, training, measuring) in
``work()``; everything else a stage process spends (imports, MLflow, DVC, Prefect) is overhead.
benchmarks/pipeline.py reads both back from the stage runs."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

_work_seconds = 0.0


@contextmanager
def work() -> Iterator[None]:
    global _work_seconds
    start = time.perf_counter()
    try:
        yield
    finally:
        _work_seconds += time.perf_counter() - start


def reset() -> None:
    global _work_seconds
    _work_seconds = 0.0


def work_seconds() -> float:
    return _work_seconds
