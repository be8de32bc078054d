"""Seeded batching and the splits the loop needs (hold-out for checkpoint choice)."""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch

from transferlab.data.loading import RowReader
from transferlab.data.types import Domain
from transferlab.errors import DataError
from transferlab.training.distributed import shard


class BatchStream:
    """An endless stream of shuffled mini-batches from one domain.

    Every pass over the data is a fresh permutation drawn from a generator seeded by
    ``(seed, name)``, so two streams in one run shuffle independently and the same seed
    always gives the same batches. A pass drops its incomplete last batch (batch-norm
    needs more than one sample) unless the domain is smaller than one batch.

    ``with_index`` also returns each sample's index into ``domain``, for methods that keep
    per-sample state across steps (e.g. SHOT's pseudo-labels of the target pool).

    After :meth:`shard` the stream still draws the same global batches but yields only one rank's
    part of each (:func:`transferlab.training.distributed.shard`).
    """

    def __init__(self, domain: Domain, batch_size: int, seed: int, name: str = "",
                 weights: np.ndarray | None = None, with_index: bool = False):
        if len(domain) == 0:
            raise DataError(f"domain '{domain.name}' is empty: nothing to train on")
        self.domain = domain
        self.batch_size = min(batch_size, len(domain))
        # A lazy domain is read a batch at a time, ahead of use, by DataLoader workers.
        self._reader: RowReader | None = None
        self._x = None if domain.is_lazy else torch.from_numpy(np.ascontiguousarray(domain.x))
        self._y = torch.from_numpy(np.ascontiguousarray(domain.y))
        self._w = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        self.with_index = with_index
        self._rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        self._order = np.empty(0, dtype=np.int64)
        self._planned = False
        self._pos = 0
        self._rank, self._world = 0, 1

    def shard(self, rank: int, world: int) -> None:
        """Yield rank ``rank``'s shard of each global batch of ``world`` equal shards."""
        if self.batch_size % world:
            raise ValueError(f"a batch of {self.batch_size} samples of '{self.domain.name}' does not split into "
                             f"{world} equal shards: make the batch size a multiple of the process count")
        self._rank, self._world = rank, world

    def __len__(self) -> int:
        """Batches in one pass."""
        return max(1, len(self.domain) // self.batch_size)

    def state(self) -> dict:
        """Where the stream is (generator state, current permutation, position), to continue it later."""
        return {"rng": self._rng.bit_generator.state, "order": self._order.copy(), "pos": self._pos}

    def restore(self, state: dict) -> None:
        self._rng.bit_generator.state = state["rng"]
        self._order, self._pos = state["order"].copy(), state["pos"]
        self._planned = False

    def next(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """``(x, y)``, then ``w`` when the stream carries per-sample weights, then the samples'
        indices into the domain (int64) with ``with_index``."""
        if self._pos + self.batch_size > len(self._order):
            self._order = self._rng.permutation(len(self.domain))
            self._pos = 0
            self._planned = False
        idx = torch.from_numpy(self._mine(self._order[self._pos:self._pos + self.batch_size]))
        x = self._x[idx] if self._x is not None else self._read_ahead(device)
        self._pos += self.batch_size
        out = [x.to(device), self._y[idx].to(device)]
        if self._w is not None:
            out.append(self._w[idx].to(device))
        if self.with_index:
            out.append(idx.to(device))
        return tuple(out)

    def _read_ahead(self, device: torch.device) -> torch.Tensor:
        """The batch at the current position, from the reader that plans the rest of this pass."""
        if self._reader is None:
            self._reader = RowReader(self.domain.x, pin_memory=torch.device(device).type == "cuda")
        if not self._planned:
            n, b = len(self._order), self.batch_size
            self._reader.start([self._mine(self._order[p:p + b]) for p in range(self._pos, n - b + 1, b)])
            self._planned = True
        return self._reader.next()

    def _mine(self, batch: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(shard(batch, self._rank, self._world)) if self._world > 1 else batch


def steps_per_epoch(sizes: list[int], batch_size: int, min_steps: int, max_steps: int | None) -> int:
    """One pass over the largest set, at least ``min_steps``, at most ``max_steps``."""
    steps = max(min_steps, max(math.ceil(n / batch_size) for n in sizes))
    return min(steps, max_steps) if max_steps is not None else steps


def holdout_split(domain: Domain, fraction: float, seed: int, min_per_class: int = 3
                  ) -> tuple[Domain, Domain | None]:
    """Stratified split of a (small) labelled domain into (train, held-out).

    Each class keeps ``floor(fraction * n_c)`` samples (at least one) aside. When some class
    has fewer than ``min_per_class`` labelled samples there is too little to hold out and
    ``(domain, None)`` is returned: the caller then trains on everything and says so.
    """
    counts = domain.class_counts()
    present = counts[counts > 0]
    if len(present) == 0 or present.min() < min_per_class:
        return domain, None
    rng = np.random.default_rng([seed, zlib.crc32(b"holdout")])
    held = []
    for c in np.flatnonzero(counts):
        members = np.flatnonzero(domain.y == c)
        k = max(1, int(math.floor(fraction * len(members))))
        held.extend(rng.choice(members, size=k, replace=False).tolist())
    mask = np.zeros(len(domain), dtype=bool)
    mask[held] = True
    return (domain.subset(np.flatnonzero(~mask), f"{domain.name}-train"),
            domain.subset(np.flatnonzero(mask), f"{domain.name}-holdout"))
