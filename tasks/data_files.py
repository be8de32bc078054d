"""Reading the prepared splits back (each stage reads only the folders it declares in dvc.yaml)."""

from __future__ import annotations

from pathlib import Path

from transferlab.data import Domain, load_domain_file
from transferlab.errors import DataError
from transferlab.data.adaptation import AdaptationData
from tasks.io import read_json
from tasks.paths import MANIFEST, PREPARED_SOURCE, PREPARED_TARGET, PREPARED_TEST


def _read(folder: Path, split: str) -> Domain:
    path = Path(folder) / f"{split}.npz"
    if not path.exists():
        raise DataError(f"prepared split '{split}' is missing: {path} does not exist (run the prepare stage)")
    return load_domain_file(path)


def source_manifest(root: Path) -> dict:
    return read_json(root / PREPARED_SOURCE / MANIFEST, "the prepared source manifest")


def target_manifest(root: Path) -> dict:
    return read_json(root / PREPARED_TARGET / MANIFEST, "the prepared target manifest")


def source_splits(root: Path) -> tuple[Domain, Domain] | None:
    """(train, val), or None when there is no source data (only a source model)."""
    if not source_manifest(root).get("available", True):
        return None
    return _read(root / PREPARED_SOURCE, "train"), _read(root / PREPARED_SOURCE, "val")


def target_splits(root: Path) -> tuple[Domain | None, Domain | None]:
    """(labelled, unlabelled pool); an empty split comes back as None."""
    labelled = _read(root / PREPARED_TARGET, "labelled")
    unlabelled = _read(root / PREPARED_TARGET, "unlabelled")
    return (labelled if len(labelled) else None), (unlabelled if len(unlabelled) else None)


def road(root: Path) -> str:
    """The road prepare decided (manifests written before roads existed were domain adaptation)."""
    return target_manifest(root).get("road", "domain-adaptation")


def adaptation_data(root: Path) -> AdaptationData:
    """Everything a method may train on: source splits (when there is source data) and the target's
    labelled and unlabelled splits. Never the target test split."""
    source = source_splits(root)
    labelled, unlabelled = target_splits(root)
    return AdaptationData(source_train=source[0] if source else None, source_val=source[1] if source else None,
                          target_labelled=labelled, target_unlabelled=unlabelled,
                          source_classes=tuple(source_manifest(root)["classes"]))


def target_test(root: Path) -> Domain:
    """The held-out target test split. Only the evaluate stage (and validate, for integrity) may call this."""
    return _read(root / PREPARED_TEST, "test")
