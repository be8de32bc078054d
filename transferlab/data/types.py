"""The in-memory form of a domain and of its splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transferlab.data.lazy import LazyArray
from transferlab.errors import DataError


@dataclass(frozen=True)
class Domain:
    """A labelled sample set.

    ``x`` is float32: images as (N, C, H, W) with values in [0, 1], or plain feature
    vectors as (N, D); in memory, or a :class:`~transferlab.data.lazy.LazyArray` whose rows are
    read when used. ``y`` is int64 (N,), each value an index into ``classes``.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise DataError(
                f"domain '{self.name}' has {self.x.shape[0]} samples but {self.y.shape[0]} labels"
            )
        if isinstance(self.x, np.ndarray) and self.x.dtype != np.float32:
            object.__setattr__(self, "x", self.x.astype(np.float32))
        if self.y.dtype != np.int64:
            object.__setattr__(self, "y", self.y.astype(np.int64))

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def is_image(self) -> bool:
        return self.x.ndim == 4

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, index: np.ndarray, name: str | None = None) -> "Domain":
        x = self.x.subset(index) if isinstance(self.x, LazyArray) else self.x[index]
        return Domain(name or self.name, x, self.y[index], self.classes)

    @property
    def is_lazy(self) -> bool:
        """Whether ``x`` is read row by row when used (:mod:`transferlab.data.lazy`) instead of held whole."""
        return isinstance(self.x, LazyArray)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.y, minlength=self.num_classes)
