"""Samples produced when they are indexed, for domains larger than memory.

A :class:`LazyArray` stands where a domain's ``x`` array would: it has a shape, a dtype (float32),
a length, and ``x[ids]`` returns those rows as a NumPy array. Behind it a *reader* produces rows
by id (image files decoded by PIL through torchvision's ImageFolder listing, or a memory-mapped
array inside an uncompressed ``.npz``), and *maps* transform them after reading (resizing, channel
conversion, shifts), so that a subset is a list of ids and nothing is decoded until it is used.

Rows come out exactly as the in-memory path makes them (the same scaling to [0, 1], the same
resizing code), so a domain read lazily and one read whole give the same prepared splits and the
same training.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

import numpy as np

from transferlab.errors import DataError

CHUNK = 512


class Reader(Protocol):
    """Produces rows of the underlying data by id (int64 ids in ``range(length)``)."""

    length: int
    sample_shape: tuple[int, ...]
    key: str  # identifies the data and how it is read (part of every fingerprint)

    def read(self, ids: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Mapped:
    """``fn(rows, ids)`` applied to another reader's rows: a resize, a channel change, a shift."""

    base: Reader
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray]
    sample_shape: tuple[int, ...]
    what: str

    @property
    def length(self) -> int:
        return self.base.length

    @property
    def key(self) -> str:
        return f"{self.base.key}|{self.what}"

    def read(self, ids: np.ndarray) -> np.ndarray:
        return self.fn(self.base.read(ids), ids)


class LazyArray:
    """An (N, *sample_shape) float32 array-like over ``reader``'s rows ``index`` (a view)."""

    dtype = np.dtype(np.float32)

    def __init__(self, reader: Reader, index: np.ndarray | None = None):
        self.reader = reader
        self.index = np.arange(reader.length, dtype=np.int64) if index is None else np.asarray(index, np.int64)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.reader.sample_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.reader.sample_shape)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.reader.read(self.index[[int(key)]])[0]
        ids = self.index[key]
        if len(ids) == 0:
            return np.zeros((0, *self.reader.sample_shape), dtype=np.float32)
        return self.reader.read(ids)

    def subset(self, index) -> "LazyArray":
        return LazyArray(self.reader, self.index[index])

    def map(self, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], sample_shape: tuple[int, ...],
            what: str) -> "LazyArray":
        """Every row passed through ``fn(rows, ids)`` (ids are the reader's, stable under subsetting)."""
        return LazyArray(Mapped(self.reader, fn, tuple(sample_shape), what), self.index)

    def chunks(self, size: int = CHUNK) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, len(self), size):
            yield start, self[start:start + size]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """All rows in memory: for small domains (a labelled target) and code that needs a whole array."""
        out = np.empty(self.shape, dtype=np.float32)
        for start, rows in self.chunks():
            out[start:start + len(rows)] = rows
        return out if dtype is None else out.astype(dtype)

    def fingerprint(self) -> str:
        """What the rows are: the reader's key and the ids (cheap; no row is read)."""
        digest = hashlib.blake2b(self.reader.key.encode(), digest_size=16)
        digest.update(self.index.tobytes())
        return digest.hexdigest()


def chunks(x, size: int = CHUNK) -> Iterator[tuple[int, np.ndarray]]:
    """(start, rows) over an in-memory or lazy array, ``size`` rows at a time."""
    if isinstance(x, LazyArray):
        yield from x.chunks(size)
        return
    for start in range(0, len(x), size):
        yield start, x[start:start + size]


def in_memory(x) -> np.ndarray:
    return np.asarray(x) if isinstance(x, LazyArray) else x


def check_finite(x, where: str) -> None:
    for _, rows in chunks(x):
        if not np.isfinite(rows).all():
            raise DataError(f"{where}: images contain NaN or infinite values")
