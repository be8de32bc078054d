"""prepare: load both domains, bring them to one shape, decide the road, split, write manifests.

The road comes from the class names (:mod:`transferlab.data.labels`): the source's (its data's,
or the imported model's when there is no source data) against the target's. On the
domain-adaptation road the target's labels are re-indexed to the source's class order, so the
source head's outputs mean the target's classes; on the task-transfer road the target keeps its
own classes, and a new task with no labelled target sample is refused here, before anything runs,
unless a class–attribute table (``data.attributes``) makes it zero-shot transfer: the table's rows
of the source's and the target's classes are then written into the target manifest.

Datasets are read from the registry: built-ins, or the project's own ones under ``data/raw``
(:mod:`tasks.datasets`, tracked by DVC; dvc.yaml lists ``data/raw`` as a dep). Each run records
what it read as MLflow dataset inputs with their DVC hash (or package version, or sha256).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from transferlab.config import PipelineParams
from transferlab.data import (DOMAIN_ADAPTATION, Domain, DomainRecipe, build_domain, label_spaces, reorder_classes,
                              row_hashes, source_split_ids, target_split_ids)
from transferlab.data.attributes import ClassAttributes, read_attribute_table
from transferlab.errors import DataError
from tasks import datasets, timing, tracking
from tasks.data_files import write_split
from tasks.io import atomic_dir, write_manifest
from tasks.paths import PREPARED_SOURCE, PREPARED_TARGET, PREPARED_TEST

NAME = "prepare"
DEPS: list[Path] = []


def run(params: PipelineParams, root: Path = Path(".")) -> dict:
    d = params.data
    datasets.register_tracked(root)
    with timing.work():
        counts, source, target, road = _prepare(params, root)
    for where, spec in (("data.source", d.source), ("data.target", d.target)):  # after: an error stays one line
        if warning := datasets.untracked_path_warning(root, where, spec):
            print(warning, file=sys.stderr)
    inputs = {role: datasets.domain_input(root, spec) for role, spec in (("source", d.source), ("target", d.target))
              if spec is not None}
    with tracking.stage_run(root, params, NAME, DEPS) as run_:
        for role, data in inputs.items():
            run_.log_dataset(data, context=role)
        run_.log_params({"seed": params.seed, "data": d.model_dump(mode="json")})
        run_.log_metrics({f"n_{k}": v for k, v in counts.items()})
        run_.set_tags({"source.domain": source, "target.domain": target, "road": road})
        run_.tag_parent({"road": road})
    return {"source": source, "target": target, "road": road, **counts}


def _source_classes(params: PipelineParams, root: Path, source: Domain | None) -> tuple[str, ...]:
    if source is not None:
        return tuple(source.classes)
    from tasks.pretrained import import_pretrained

    return import_pretrained(params, root).classes


def _recipe(params: PipelineParams, spec, classes: tuple[str, ...] | None = None) -> DomainRecipe:
    d = params.data
    return DomainRecipe(spec=spec, seed=params.seed, image_size=d.image_size, channels=d.channels,
                        classes=list(classes) if classes is not None else None)


def _prepare(params: PipelineParams, root: Path) -> tuple[dict, str | None, str, str]:
    d = params.data
    source = build_domain(_recipe(params, d.source)) if d.source else None
    target = build_domain(_recipe(params, d.target))
    if source is not None and source.x.shape[1:] != target.x.shape[1:]:
        raise DataError(
            f"source '{source.name}' samples have shape {source.x.shape[1:]} but target '{target.name}' "
            f"samples have shape {target.x.shape[1:]}; feature-vector domains must share a dimension"
        )
    spaces = label_spaces(_source_classes(params, root, source), target.classes)
    attributes = _attributes(params, root, spaces)
    if spaces.road == DOMAIN_ADAPTATION:
        target = reorder_classes(target, spaces.source)
    elif d.target_labels_per_class == 0 and attributes is None:
        raise DataError(f"{spaces.sentence()[:-1]}, so the target needs labelled samples, but "
                        "data.target_labels_per_class is 0: set it to 1 or more, or give a class–attribute table "
                        "(data.attributes) for zero-shot transfer")
    # Every row is read once here: a corrupt file fails now, in one line, and the hashes decide the
    # test split and fingerprint the content, so that a change to the data changes prepare's output.
    target_hashes = row_hashes(target.x)
    labelled, unlabelled, test = target_split_ids(target, target_hashes, d.target_labels_per_class,
                                                  d.target_test_fraction, params.seed)
    common = {"sample_shape": list(target.x.shape[1:]), "seed": params.seed, "road": spaces.road}
    # Pretrain's attribute supervision reads the seen classes' rows only, from the source manifest.
    seen_rows = attributes.for_classes(spaces.source)[0].to_dict() if attributes is not None and source else None
    counts = _write_source(params, root, source, spaces.source, {**common, **(
        {"attributes": seen_rows} if seen_rows else {})})
    target_meta = {"classes": list(spaces.target), "label_spaces": spaces.to_dict(), **common,
                   **({"attributes": attributes.to_dict()} if attributes is not None else {}),
                   "recipe": _recipe(params, d.target, spaces.target).model_dump(mode="json"),
                   "content": _fingerprint(target, target_hashes)}
    with atomic_dir(root / PREPARED_TARGET) as tmp:
        for name, ids in (("labelled", labelled), ("unlabelled", unlabelled)):
            write_split(tmp, name, ids, target.y[ids], target_hashes[ids])
        write_manifest(tmp, "target-splits", [], domain=target.name, labels_per_class=d.target_labels_per_class,
                       counts={"labelled": len(labelled), "unlabelled": len(unlabelled)}, **target_meta)
    with atomic_dir(root / PREPARED_TEST) as tmp:
        write_split(tmp, "test", test, target.y[test], target_hashes[test])
        write_manifest(tmp, "target-test", [], domain=target.name, counts={"test": len(test)}, **target_meta)
    counts.update(target_labelled=len(labelled), target_unlabelled=len(unlabelled), target_test=len(test))
    return counts, source.name if source else None, target.name, spaces.road


def _attributes(params: PipelineParams, root: Path, spaces) -> ClassAttributes | None:
    """The class–attribute table restricted to the source's and the target's classes (errors: a class
    missing from it, two of them with one row; warnings: attributes constant over them)."""
    if params.data.attributes is None:
        return None
    table = read_attribute_table(params.data.attributes, root)
    in_use = (*spaces.source, *spaces.only_target)
    table, warnings = table.for_classes(in_use)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return table


def _write_source(params: PipelineParams, root: Path, source: Domain | None, classes: tuple[str, ...],
                  common: dict) -> dict:
    counts = {"source_train": 0, "source_val": 0}
    extra = {}
    with atomic_dir(root / PREPARED_SOURCE) as tmp:
        if source is not None:
            hashes = row_hashes(source.x)
            train, val = source_split_ids(source, params.data.source_val_fraction, params.seed)
            for name, ids in (("train", train), ("val", val)):
                write_split(tmp, name, ids, source.y[ids], hashes[ids])
            counts = {"source_train": len(train), "source_val": len(val)}
            extra = {"recipe": _recipe(params, params.data.source).model_dump(mode="json"),
                     "content": _fingerprint(source, hashes)}
        write_manifest(tmp, "source-splits", [], domain=source.name if source else None, available=source is not None,
                       classes=list(classes), counts={"train": counts["source_train"], "val": counts["source_val"]},
                       **common, **extra)
    return counts


def _fingerprint(domain: Domain, hashes: np.ndarray) -> str:
    """The prepared domain's content: every row's hash and label, in order."""
    digest = hashlib.sha256(hashes.astype("<u8").tobytes())
    digest.update(domain.y.astype("<i8").tobytes())
    digest.update("\0".join(domain.classes).encode())
    return digest.hexdigest()
