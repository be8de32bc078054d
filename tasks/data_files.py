"""The prepared splits: written by prepare, read back by every later stage (each stage reads only the
folders it declares in dvc.yaml).

A split is a list of ids, not a copy of its pixels: ``{split}.npz`` holds the ids of its samples in
the prepared domain, their labels and a hash of each sample's content, and the folder's manifest holds
the recipe that makes the domain from its dataset (:class:`transferlab.data.DomainRecipe`). Reading a
split makes the domain again (lazily for image folders and memory-mapped arrays, so nothing is
decoded until a batch needs it) and takes its rows; its labels and a seeded sample of its rows'
hashes must match what prepare wrote, or the data changed since and prepare must run again. A split
file that holds ``x`` itself (a test's synthetic domain, or a project prepared by an older
transferlab) is read as it is.
"""

from __future__ import annotations

from functools import lru_cache, partial
from pathlib import Path

import numpy as np

from transferlab.data import Domain, DomainRecipe, build_domain, load_domain_file, row_hashes
from transferlab.data.adaptation import AdaptationData, SourceCandidate
from transferlab.data.attributes import ClassAttributes
from transferlab.errors import DataError
from tasks import datasets
from tasks.io import read_json
from tasks.paths import (CANDIDATES, MANIFEST, PREPARED_SOURCE, PREPARED_TARGET, PREPARED_TEST, SELECTION,
                         SOURCE_MODEL)

SPOT_CHECKS = 16  # rows per split whose content hash is compared with prepare's on every read


def write_split(folder: Path, split: str, ids: np.ndarray, y: np.ndarray, hashes: np.ndarray) -> None:
    np.savez(Path(folder) / f"{split}.npz", index=ids.astype(np.int64), y=y.astype(np.int64),
             row_hash=hashes.astype(np.uint64))


@lru_cache(maxsize=4)
def _built(root: str, recipe_json: str, content: str | None) -> Domain:
    """The prepared domain, made once per stage (``content``, prepare's fingerprint, keys it too: a
    process that runs prepare again makes it again)."""
    datasets.register_tracked(Path(root))  # a recipe may name a dataset tracked under data/raw
    return build_domain(DomainRecipe.model_validate_json(recipe_json))


def _read(root: Path, folder: Path, split: str) -> Domain:
    path = Path(folder) / f"{split}.npz"
    if not path.exists():
        raise DataError(f"prepared split '{split}' is missing: {path} does not exist (run the prepare stage)")
    with np.load(path, allow_pickle=False) as stored:
        if "x" in stored.files:
            return load_domain_file(path)
        ids, y, hashes = stored["index"], stored["y"], stored["row_hash"]
    manifest = read_json(Path(folder) / MANIFEST, f"the manifest of {folder}")
    recipe = DomainRecipe.model_validate(manifest["recipe"])
    domain = _built(str(Path(root).resolve()), recipe.model_dump_json(), manifest.get("content"))
    if len(ids) and (ids.max() >= len(domain) or not np.array_equal(domain.y[ids], y)):
        _changed(split, recipe)
    rows = domain.subset(ids)
    check = np.random.default_rng(0).permutation(len(ids))[:SPOT_CHECKS]
    if len(check) and not np.array_equal(row_hashes(rows.subset(check).x), hashes[check]):
        _changed(split, recipe)
    return rows


def _changed(split: str, recipe: DomainRecipe) -> None:
    raise DataError(f"dataset '{recipe.spec.name}' changed since prepare wrote the '{split}' split: "
                    "run prepare again (`dvc repro` or `transferlab run`)")


def source_manifest(root: Path) -> dict:
    return read_json(root / PREPARED_SOURCE / MANIFEST, "the prepared source manifest")


def source_folder(root: Path, candidate: int | None = None) -> Path:
    """Where the source splits are: ``data/prepared/source`` itself, or with several candidate
    sources (``data.sources``) the folder of ``candidate``, by default the one select chose."""
    names = source_manifest(root).get("candidates")
    if names is None:
        return root / PREPARED_SOURCE
    index = chosen_source(root) if candidate is None else candidate
    if not 0 <= index < len(names):
        raise DataError(f"there is no candidate source {index} in {PREPARED_SOURCE} (it holds {len(names)}); "
                        "run prepare again")
    return root / PREPARED_SOURCE / CANDIDATES / str(index)


def source_model_folder(root: Path, candidate: int | None = None) -> Path:
    """``models/source``, or with several candidate sources the model of ``candidate`` (default:
    the one select chose) under ``models/source/candidates/<index>``."""
    if source_manifest(root).get("candidates") is None:
        return root / SOURCE_MODEL
    return root / SOURCE_MODEL / CANDIDATES / str(chosen_source(root) if candidate is None else candidate)


def chosen_source(root: Path) -> int:
    """The candidate source select chose (reports/selection.json), for the stages after it."""
    chosen = read_json(root / SELECTION, "the selection report").get("source")
    if not chosen:
        raise DataError(f"{SELECTION} names no chosen source but {PREPARED_SOURCE} holds several candidates: "
                        "run select again")
    return int(chosen["index"])


def target_manifest(root: Path) -> dict:
    return read_json(root / PREPARED_TARGET / MANIFEST, "the prepared target manifest")


def source_splits(root: Path, candidate: int | None = None) -> tuple[Domain, Domain] | None:
    """(train, val), or None when there is no source data (only a source model); with several
    candidate sources, those of ``candidate`` (default: the one select chose)."""
    folder = source_folder(root, candidate)
    if not _has_data(folder):
        return None
    return _read(root, folder, "train"), _read(root, folder, "val")


def _has_data(folder: Path) -> bool:
    """From the folder's own manifest: a single source's (the top one), or a candidate's (a model
    among data.sources has no data)."""
    return read_json(folder / MANIFEST, f"the manifest of {folder}").get("available", True)


def target_splits(root: Path) -> tuple[Domain | None, Domain | None]:
    """(labelled, unlabelled pool); an empty split comes back as None."""
    labelled = _read(root, root / PREPARED_TARGET, "labelled")
    unlabelled = _read(root, root / PREPARED_TARGET, "unlabelled")
    return (labelled if len(labelled) else None), (unlabelled if len(unlabelled) else None)


def road(root: Path) -> str:
    """The road prepare decided (manifests written before roads existed were domain adaptation)."""
    return target_manifest(root).get("road", "domain-adaptation")


def adaptation_data(root: Path, candidate: int | None = None) -> AdaptationData:
    """Everything a method may train on: source splits (when there is source data; with several
    candidate sources, ``candidate``'s, default the chosen one) and the target's labelled and
    unlabelled splits. Never the target test split."""
    source = source_splits(root, candidate)
    labelled, unlabelled = target_splits(root)
    attributes = target_manifest(root).get("attributes")
    return AdaptationData(source_train=source[0] if source else None, source_val=source[1] if source else None,
                          target_labelled=labelled, target_unlabelled=unlabelled,
                          source_classes=tuple(source_manifest(root)["classes"]),
                          class_attributes=ClassAttributes.from_dict(attributes) if attributes else None,
                          other_sources=other_sources(root, candidate))


def other_sources(root: Path, candidate: int | None = None) -> tuple[SourceCandidate, ...]:
    """With several candidate sources, every one with data but ``candidate`` (default: the one select
    chose), for the methods that train on several (multi-source); else none. Nothing is read here:
    each candidate's splits are read when a method first uses them."""
    manifest = source_manifest(root)
    names = manifest.get("candidates")
    if names is None:
        return ()
    own = chosen_source(root) if candidate is None else candidate
    return tuple(SourceCandidate(names[i], tuple(manifest["classes"]), partial(source_splits, root, i))
                 for i in range(len(names)) if i != own and _has_data(source_folder(root, i)))


def target_test(root: Path) -> Domain:
    """The held-out target test split. Only the evaluate stage (and validate, for integrity) may call this."""
    return _read(root, root / PREPARED_TEST, "test")
