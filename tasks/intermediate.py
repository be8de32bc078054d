"""The intermediate pools (``data.intermediate``): written by prepare without their labels, read back
by similarity and adapt as unlabelled domains.

Each pool is ``{i:02d}.npz`` in ``data/prepared/intermediate`` holding the ids of its samples in
the prepared domain and each sample's content hash, never a label; the manifest holds each pool's
recipe. Reading a pool makes the domain again, takes its rows, spot-checks their hashes and
returns them with every label set to -1 (any loss that tried to use one would fail), under the
target's class names, so that a method sees an ordinary unlabelled target-like pool.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tasks import datasets
from tasks.io import atomic_dir, read_json, write_manifest
from tasks.paths import MANIFEST, PREPARED_INTERMEDIATE
from transferlab.config import PipelineParams
from transferlab.data import Domain, DomainRecipe, build_domain, row_hashes
from transferlab.errors import DataError

SPOT_CHECKS = 16


def _recipe(params: PipelineParams, spec) -> DomainRecipe:
    # The subsample is drawn here, at random; the registry's max_samples is stratified (it reads labels).
    plain = spec.model_dump(exclude={"max_samples"})
    return DomainRecipe(spec=plain, seed=params.seed, image_size=params.data.image_size,
                        channels=params.data.channels)


def _names(domains: list[Domain]) -> list[str]:
    """Each pool's name: its domain's, numbered where two would be the same."""
    names = [d.name for d in domains]
    return [f"{n}#{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def write_pools(params: PipelineParams, root: Path, sample_shape: tuple, target_classes: tuple[str, ...]) -> dict:
    """Prepare every ``data.intermediate`` pool; returns their sizes by name."""
    specs = params.data.intermediate
    built = [build_domain(_recipe(params, spec)) for spec in specs]
    for i, domain in enumerate(built):
        if tuple(domain.x.shape[1:]) != tuple(sample_shape):
            raise DataError(f"data.intermediate.{i} ('{domain.name}') has samples of shape {tuple(domain.x.shape[1:])} "
                            f"but the target's are {tuple(sample_shape)}")
    names, pools = _names(built), []
    with atomic_dir(root / PREPARED_INTERMEDIATE) as tmp:
        for i, (spec, domain, name) in enumerate(zip(specs, built, names)):
            ids = np.arange(len(domain))
            if spec.max_samples is not None and spec.max_samples < len(domain):
                ids = np.sort(np.random.default_rng([params.seed, i]).permutation(len(domain))[:spec.max_samples])
            if len(ids) < 2:
                raise DataError(f"data.intermediate.{i} ('{domain.name}') holds fewer than 2 samples")
            hashes = row_hashes(domain.subset(ids).x)
            np.savez(tmp / f"{i:02d}.npz", index=ids.astype(np.int64), row_hash=hashes.astype(np.uint64))
            pools.append({"name": name, "file": f"{i:02d}.npz", "count": len(ids),
                          "recipe": _recipe(params, spec).model_dump(mode="json"),
                          "content": hashlib.sha256(hashes.astype("<u8").tobytes()).hexdigest()})
        write_manifest(tmp, "intermediate-pools", [], pools=pools, classes=list(target_classes),
                       labels="none: intermediate pools are unlabelled, no label is written")
    return {p["name"]: p["count"] for p in pools}


def read_pools(root: Path) -> dict[str, Domain]:
    """Every prepared pool by name, in params order, labels -1 (an empty dict when there are none, or
    when the project was prepared before intermediate pools existed)."""
    folder = Path(root) / PREPARED_INTERMEDIATE
    if not (folder / MANIFEST).exists():
        return {}
    manifest = read_json(folder / MANIFEST, "the intermediate pools' manifest")
    classes = tuple(manifest["classes"])
    pools = {}
    datasets.register_tracked(Path(root))  # a recipe may name a dataset tracked under data/raw
    for entry in manifest["pools"]:
        domain = build_domain(DomainRecipe.model_validate(entry["recipe"]))
        with np.load(folder / entry["file"], allow_pickle=False) as stored:
            ids, hashes = stored["index"], stored["row_hash"]
        if len(ids) and ids.max() >= len(domain):
            _changed(entry["name"])
        rows = domain.subset(ids)
        check = np.random.default_rng(0).permutation(len(ids))[:SPOT_CHECKS]
        if not np.array_equal(row_hashes(rows.subset(check).x), hashes[check]):
            _changed(entry["name"])
        pools[entry["name"]] = Domain(entry["name"], rows.x, np.full(len(ids), -1, dtype=np.int64), classes)
    return pools


def _changed(name: str) -> None:
    raise DataError(f"intermediate domain '{name}' changed since prepare wrote it: run prepare again "
                    "(`dvc repro` or `transferlab run`)")
