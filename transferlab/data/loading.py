"""Batches of a lazy domain read ahead by a torch DataLoader's worker processes.

Training and prediction take their batches from here when a domain is lazy
(:class:`~transferlab.data.lazy.LazyArray`): the order is the caller's (a seeded permutation, or the
domain's own for prediction), each worker reads whole batches (``x[ids]``: decode, resize, shift),
and with a GPU the batches come in pinned memory. ``TRANSFERLAB_READ_WORKERS`` sets how many worker
processes read (default: 2 where the machine has 2 cores or more; 0 reads in the calling process).
"""

from __future__ import annotations

import os
import signal
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from transferlab.data.lazy import LazyArray


def _ignore_interrupts(_worker_id: int) -> None:
    """A Ctrl-C reaches the whole process group: the workers leave it to the main process, which
    stops them, instead of dying on their own and leaving it waiting for their batches."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def read_workers() -> int:
    default = 2 if (os.cpu_count() or 1) >= 2 else 0
    return max(0, int(os.environ.get("TRANSFERLAB_READ_WORKERS", default)))


class _Rows(Dataset):
    """Item = a batch: the rows of an array of ids."""

    def __init__(self, x: LazyArray):
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, ids: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.x[np.asarray(ids)])


class _Plan(Sampler):
    """The batches of the current pass, set before each ``iter(loader)``."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class RowReader:
    """Reads planned batches of ``x`` ahead of their use; workers persist between passes."""

    def __init__(self, x: LazyArray, pin_memory: bool = False, workers: int | None = None):
        workers = read_workers() if workers is None else workers
        self._plan = _Plan()
        # Its own generator: a DataLoader draws its workers' base seed from the one it is given, and
        # a draw from torch's global generator would change the training's random numbers.
        self._loader = DataLoader(_Rows(x), sampler=self._plan, batch_size=None, num_workers=workers,
                                  pin_memory=pin_memory, persistent_workers=workers > 0,
                                  prefetch_factor=2 if workers > 0 else None, worker_init_fn=_ignore_interrupts,
                                  generator=torch.Generator().manual_seed(0))
        self._it: Iterator[torch.Tensor] | None = None

    def start(self, batches: list[np.ndarray]) -> None:
        self._plan.batches = list(batches)
        self._it = iter(self._loader)

    def next(self) -> torch.Tensor:
        return next(self._it)


def batches_in_order(x, batch_size: int) -> Iterator[torch.Tensor]:
    """``x`` in its own order, ``batch_size`` rows at a time, as tensors (read ahead when lazy)."""
    if not isinstance(x, LazyArray):
        for start in range(0, len(x), batch_size):
            yield torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size]))
        return
    reader = RowReader(x, workers=read_workers() if len(x) > 4 * batch_size else 0)
    reader.start([np.arange(s, min(s + batch_size, len(x))) for s in range(0, len(x), batch_size)])
    yield from reader._it
