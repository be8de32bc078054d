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
from transferlab.data import (DOMAIN_ADAPTATION, Domain, DomainRecipe, DomainSpec, build_domain, label_spaces,
                              reorder_classes, row_hashes, source_split_ids, target_split_ids)
from transferlab.data.attributes import ClassAttributes, read_attribute_table
from transferlab.errors import DataError
from tasks import datasets, intermediate, timing, tracking
from tasks.data_files import write_split
from tasks.io import atomic_dir, write_manifest
from tasks.paths import CANDIDATES, PREPARED_SOURCE, PREPARED_TARGET, PREPARED_TEST

NAME = "prepare"
DEPS: list[Path] = []


def _roles(params: PipelineParams) -> list[tuple[str, str, object]]:
    """(params key, MLflow dataset context, spec) of every domain prepare reads."""
    d = params.data
    inter = [(f"data.intermediate.{i}", "intermediate", spec) for i, spec in enumerate(d.intermediate)]
    if d.sources is None:
        return [(key, role, spec) for key, role, spec in (("data.source", "source", d.source),
                                                          ("data.target", "target", d.target), *inter)
                if spec is not None]
    return [*((f"data.sources[{i}]", f"source candidate {i}", spec) for i, spec in enumerate(d.sources)
              if isinstance(spec, DomainSpec)),
            ("data.target", "target", d.target), *inter]


def run(params: PipelineParams, root: Path = Path(".")) -> dict:
    d = params.data
    datasets.register_tracked(root)
    with timing.work():
        counts, source, target, road = _prepare(params, root)
    if d.sources is not None:
        source = "candidates: " + ", ".join(candidate_names(d.sources))
    for where, _, spec in _roles(params):  # after: an error stays one line
        if warning := datasets.untracked_path_warning(root, where, spec):
            print(warning, file=sys.stderr)
    inputs = [(role, datasets.domain_input(root, spec)) for _, role, spec in _roles(params)]
    with tracking.stage_run(root, params, NAME, DEPS) as run_:
        for role, data in inputs:
            run_.log_dataset(data, context=role)
        run_.log_params({"seed": params.seed,  # data.sources only when set: a single-source run logs what it always did
                         "data": d.model_dump(mode="json", exclude={"sources"} if d.sources is None else None)})
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


def _same_sample_shape(what: str, source: Domain, target: Domain) -> None:
    if source.x.shape[1:] != target.x.shape[1:]:
        raise DataError(f"{what} samples have shape {source.x.shape[1:]} but target '{target.name}' samples have "
                        f"shape {target.x.shape[1:]}; feature-vector domains must share a dimension")


def _candidates(params: PipelineParams, root: Path, target: Domain) -> tuple[list[Domain | None], tuple[str, ...]]:
    """Every candidate of data.sources: a dataset, built and checked to share the target's sample
    shape, or None for a trained model (it brings no data; its classes are its outputs'). All must
    share the first candidate's classes (one label space: the ranking compares like with like).
    Returns the candidates and those classes."""
    from tasks.pretrained import import_model

    names = candidate_names(params.data.sources)
    built: list[Domain | None] = []
    classes: list[tuple[str, ...]] = []
    for i, spec in enumerate(params.data.sources):
        if isinstance(spec, DomainSpec):
            source = build_domain(_recipe(params, spec))
            _same_sample_shape(f"data.sources[{i}] '{source.name}'", source, target)
            built.append(source)
            classes.append(tuple(source.classes))
        else:
            built.append(None)
            classes.append(import_model(spec.model, params, root, f"data.sources[{i}].model").classes)
        if classes[i] != classes[0]:
            raise DataError(f"data.sources[{i}] '{names[i]}' has classes ({', '.join(classes[i][:6])}) other "
                            f"than data.sources[0] '{names[0]}' ({', '.join(classes[0][:6])}): candidate "
                            "sources must share one label set, in one order (data.sources[i].classes selects "
                            "a dataset's classes; a model's are its outputs)")
    return built, classes[0]


def _prepare(params: PipelineParams, root: Path) -> tuple[dict, str | None, str, str]:
    d = params.data
    target = build_domain(_recipe(params, d.target))
    if d.sources is not None:
        candidates, first_classes = _candidates(params, root, target)
        source = next((c for c in candidates if c is not None), None)
    else:
        source = build_domain(_recipe(params, d.source)) if d.source else None
    if source is not None:
        _same_sample_shape(f"source '{source.name}'", source, target)
    spaces = label_spaces(first_classes if d.sources is not None else _source_classes(params, root, source),
                          target.classes)
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
    has_source = source is not None or d.sources is not None
    seen_rows = attributes.for_classes(spaces.source)[0].to_dict() if attributes is not None and has_source else None
    source_meta = {**common, **({"attributes": seen_rows} if seen_rows else {})}
    if d.sources is not None:
        counts = _write_candidates(params, root, candidates, spaces.source, source_meta)
    else:
        counts = _write_source(params, root, source, spaces.source, source_meta)
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
    pools = intermediate.write_pools(params, root, target.x.shape[1:], spaces.target)
    counts.update({f"intermediate_{i}": n for i, n in enumerate(pools.values())})
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
    with atomic_dir(root / PREPARED_SOURCE) as tmp:
        return _write_source_splits(params, tmp, source, params.data.source, classes, common)


def _write_source_splits(params: PipelineParams, folder: Path, source: Domain | None, spec,
                         classes: tuple[str, ...], common: dict, **details) -> dict:
    counts = {"source_train": 0, "source_val": 0}
    extra = {}
    if source is not None:
        hashes = row_hashes(source.x)
        train, val = source_split_ids(source, params.data.source_val_fraction, params.seed)
        for name, ids in (("train", train), ("val", val)):
            write_split(folder, name, ids, source.y[ids], hashes[ids])
        counts = {"source_train": len(train), "source_val": len(val)}
        extra = {"recipe": _recipe(params, spec).model_dump(mode="json"), "content": _fingerprint(source, hashes)}
    write_manifest(folder, "source-splits", [], domain=source.name if source else None, available=source is not None,
                   classes=list(classes), counts={"train": counts["source_train"], "val": counts["source_val"]},
                   **common, **extra, **details)
    return counts


def _write_candidates(params: PipelineParams, root: Path, candidates: list[Domain | None], classes: tuple[str, ...],
                      common: dict) -> dict:
    """data/prepared/source/candidates/<i>/: each candidate's splits, as a single source's would be (a
    model's folder: a manifest saying it has no data); the top manifest lists them (by name) and sums
    their counts."""
    names = candidate_names(params.data.sources)
    counts = {"source_train": 0, "source_val": 0}
    with atomic_dir(root / PREPARED_SOURCE) as tmp:
        for i, (source, spec) in enumerate(zip(candidates, params.data.sources)):
            folder = tmp / CANDIDATES / str(i)
            folder.mkdir(parents=True)
            part = _write_source_splits(params, folder, source, spec, classes, common, candidate=names[i])
            counts = {k: counts[k] + part[k] for k in counts}
        write_manifest(tmp, "source-candidates", [], domain=None, available=any(c is not None for c in candidates),
                       candidates=names, models=[i for i, c in enumerate(candidates) if c is None],
                       classes=list(classes), counts={"train": counts["source_train"], "val": counts["source_val"]},
                       **common)
    return counts


def candidate_names(specs) -> list[str]:
    """A readable, unique name per candidate source: dataset, shifts, class selection; a model's
    given name, else 'model:' and its folder or file name (or registry URI)."""
    names = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, DomainSpec):
            model = spec.model
            name = spec.name or "model:" + (model.uri.removeprefix("models:/") if model.kind == "registry"
                                             else Path(model.path).name)
        else:
            name = spec.name + "".join(f"+{s.name}({s.severity:g})" for s in spec.shifts)
            if spec.classes:
                name += f"[{','.join(spec.classes)}]"
        names.append(name if name not in names else f"{name}#{i}")
    return names


def _fingerprint(domain: Domain, hashes: np.ndarray) -> str:
    """The prepared domain's content: every row's hash and label, in order."""
    digest = hashlib.sha256(hashes.astype("<u8").tobytes())
    digest.update(domain.y.astype("<i8").tobytes())
    digest.update("\0".join(domain.classes).encode())
    return digest.hexdigest()
