"""Splitting domains: seeded and stratified, with the target test split chosen by content hash.

Hashing each sample's bytes makes test membership a property of the sample itself: it does not
move when the seed, k or the rest of the dataset changes, and identical samples can never sit on
both sides of the test boundary.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from transferlab.data.lazy import chunks
from transferlab.data.types import Domain
from transferlab.errors import DataError


@dataclass(frozen=True)
class TargetSplits:
    labelled: Domain
    unlabelled: Domain
    test: Domain


def _stratified_order(y: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]


def stratified_subsample(domain: Domain, n: int, seed: int) -> Domain:
    """``n`` samples keeping class proportions (largest remainders), chosen with ``seed``."""
    if n >= len(domain):
        return domain
    rng = np.random.default_rng(seed)
    groups = _stratified_order(domain.y, rng)
    sizes = np.array([len(g) for g in groups], dtype=np.float64)
    quota = sizes / sizes.sum() * n
    take = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - take), kind="stable")[: n - take.sum()]:
        take[i] += 1
    index = np.sort(np.concatenate([g[:t] for g, t in zip(groups, take)]))
    return domain.subset(index)


def split_source(domain: Domain, val_fraction: float, seed: int) -> tuple[Domain, Domain]:
    """(train, val), stratified: each class gives ``val_fraction`` of its samples (at least one
    when it has two or more)."""
    train, val = source_split_ids(domain, val_fraction, seed)
    return domain.subset(train), domain.subset(val)


def source_split_ids(domain: Domain, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ids of :func:`split_source`'s (train, val) in ``domain``."""
    if not 0 < val_fraction < 1:
        raise DataError(f"source validation fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    val_idx = []
    for group in _stratified_order(domain.y, rng):
        n_val = int(round(len(group) * val_fraction))
        n_val = min(max(n_val, 1 if len(group) >= 2 else 0), len(group) - 1) if len(group) > 1 else 0
        val_idx.append(group[:n_val])
    val = np.sort(np.concatenate(val_idx)) if val_idx else np.array([], dtype=np.int64)
    train = np.setdiff1d(np.arange(len(domain)), val)
    if len(val) == 0 or len(train) == 0:
        raise DataError(f"source domain '{domain.name}' ({len(domain)} samples) is too small to split into "
                        f"train and validation")
    return train, val


def row_hashes(x) -> np.ndarray:
    """Each sample's float32 bytes hashed (BLAKE2b, 64 bits), read a chunk at a time (lazy domains too)."""
    out = np.empty(len(x), dtype=np.uint64)
    for start, rows in chunks(x):
        flat = np.ascontiguousarray(rows, dtype=np.float32).reshape(len(rows), -1)
        out[start:start + len(rows)] = [int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8).digest(), "big")
                                        for r in flat]
    return out


def split_target(domain: Domain, labels_per_class: int, test_fraction: float, seed: int) -> TargetSplits:
    """(labelled: k per class, unlabelled pool, test by content hash); disjoint, deterministic."""
    labelled, unlabelled, test = target_split_ids(domain, row_hashes(domain.x), labels_per_class, test_fraction, seed)
    return TargetSplits(domain.subset(labelled), domain.subset(unlabelled), domain.subset(test))


def target_split_ids(domain: Domain, hashes: np.ndarray, labels_per_class: int, test_fraction: float, seed: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ids of :func:`split_target`'s (labelled, unlabelled, test), given the rows' :func:`row_hashes`."""
    if not 0 < test_fraction < 1:
        raise DataError(f"target test fraction must be in (0, 1), got {test_fraction}")
    if labels_per_class < 0:
        raise DataError(f"labels per class must be 0 or more, got {labels_per_class}")
    is_test = np.array([int(h) / 2.0**64 for h in hashes]) < test_fraction
    test_idx = np.flatnonzero(is_test)
    rest = np.flatnonzero(~is_test)
    if len(test_idx) == 0:
        raise DataError(f"target domain '{domain.name}' ({len(domain)} samples) leaves an empty test split "
                        f"at test fraction {test_fraction}")
    if len(rest) == 0:
        raise DataError(f"target domain '{domain.name}' has no samples left outside the test split")
    rng = np.random.default_rng(seed)
    labelled = []
    if labels_per_class:
        for c in range(domain.num_classes):
            pool = rest[domain.y[rest] == c]
            if len(pool) < labels_per_class:
                raise DataError(f"target class '{domain.classes[c]}' has {len(pool)} samples outside the test "
                                f"split, fewer than the {labels_per_class} labelled per class asked for")
            labelled.append(rng.choice(pool, size=labels_per_class, replace=False))
    labelled_idx = np.sort(np.concatenate(labelled)) if labelled else np.array([], dtype=np.int64)
    unlabelled_idx = np.setdiff1d(rest, labelled_idx)
    return labelled_idx, unlabelled_idx, test_idx
