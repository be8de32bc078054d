"""Reading the prepared splits back (each stage reads only the folders it declares in dvc.yaml)."""

from __future__ import annotations

from pathlib import Path

from transferlab.data import Domain, load_domain_file
from transferlab.errors import DataError
from transferlab.methods import AdaptationData
from tasks.paths import PREPARED_SOURCE, PREPARED_TARGET, PREPARED_TEST


def _read(folder: Path, split: str) -> Domain:
    path = Path(folder) / f"{split}.npz"
    if not path.exists():
        raise DataError(f"prepared split '{split}' is missing: {path} does not exist (run the prepare stage)")
    return load_domain_file(path)


def source_splits(root: Path) -> tuple[Domain, Domain]:
    return _read(root / PREPARED_SOURCE, "train"), _read(root / PREPARED_SOURCE, "val")


def target_splits(root: Path) -> tuple[Domain | None, Domain | None]:
    """(labelled, unlabelled pool); an empty split comes back as None."""
    labelled = _read(root / PREPARED_TARGET, "labelled")
    unlabelled = _read(root / PREPARED_TARGET, "unlabelled")
    return (labelled if len(labelled) else None), (unlabelled if len(unlabelled) else None)


def adaptation_data(root: Path) -> AdaptationData:
    """Everything a method may train on: source splits and the target's labelled and unlabelled
    splits. Never the target test split."""
    train, val = source_splits(root)
    labelled, unlabelled = target_splits(root)
    return AdaptationData(source_train=train, source_val=val, target_labelled=labelled, target_unlabelled=unlabelled)


def target_test(root: Path) -> Domain:
    """The held-out target test split. Only the evaluate stage (and validate, for integrity) may call this."""
    return _read(root / PREPARED_TEST, "test")
