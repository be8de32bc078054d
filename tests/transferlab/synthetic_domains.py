"""Tiny synthetic domain pairs for the training and methods tests (fast, deterministic)."""

from __future__ import annotations

import numpy as np

from transferlab.data.types import Domain
from transferlab.methods import AdaptationData
from transferlab.models import ModelSpec, build_model

CLASSES = ("a", "b", "c")


def blobs(name: str, n: int, seed: int, offset: float = 0.0, dim: int = 6) -> Domain:
    """Three Gaussian classes on a line in the first coordinate (means -3, 0, 3), noise 0.6;
    ``offset`` translates the domain along every *other* coordinate: a nuisance shift that a
    source-trained network is not invariant to but domain-invariant features can ignore."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(0, 0.6, size=(n, dim))
    x[:, 0] += 3.0 * (y - 1)
    x[:, 1:] += offset
    x[:, 1] += 0.5 * (y - 1)
    return Domain(name, x.astype(np.float32), y.astype(np.int64), CLASSES)


def images(name: str, n: int, seed: int, invert: bool = False, size: int = 16) -> Domain:
    """Class c is a bright bar in row band c of a noisy ``size``x``size`` grey image."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.uniform(0, 0.3, size=(n, 1, size, size))
    band = size // 3
    for i, c in enumerate(y):
        x[i, 0, c * band:(c + 1) * band, 2:-2] += 0.6
    x = np.clip(x, 0, 1)
    if invert:
        x = 1 - x
    return Domain(name, x.astype(np.float32), y.astype(np.int64), CLASSES)


def blob_data(offset: float = 3.0, labels_per_class: int = 10, unlabelled: int = 150, dim: int = 6) -> AdaptationData:
    lab = blobs("target", 3 * labels_per_class, seed=11, offset=offset, dim=dim) if labels_per_class else None
    unl = blobs("target-pool", unlabelled, seed=12, offset=offset, dim=dim) if unlabelled else None
    return AdaptationData(blobs("source", 240, seed=1, dim=dim), blobs("source-val", 60, seed=2, dim=dim), lab, unl)


def blob_test(offset: float = 3.0, dim: int = 6) -> Domain:
    return blobs("target-test", 300, seed=13, offset=offset, dim=dim)


def mlp(dim: int = 6, hidden: int = 32, seed: int = 0):
    return build_model(ModelSpec(arch="mlp", input_dim=dim, hidden=hidden, num_classes=3), seed=seed)


def lenet(seed: int = 0, hidden: int = 32):
    return build_model(ModelSpec(arch="lenet", image_size=16, hidden=hidden, num_classes=3), seed=seed)
