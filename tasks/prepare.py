"""prepare: load both domains, bring them to one shape, split them, write them with manifests."""

from __future__ import annotations

from pathlib import Path

from transferlab.config import PipelineParams
from transferlab.data import check_same_label_space, harmonise, load_domain, save_domain, split_source, split_target
from transferlab.errors import DataError
from tasks import timing, tracking
from tasks.io import atomic_dir, write_manifest
from tasks.paths import PREPARED_SOURCE, PREPARED_TARGET, PREPARED_TEST

NAME = "prepare"
DEPS: list[Path] = []


def run(params: PipelineParams, root: Path = Path(".")) -> dict:
    d = params.data
    with timing.work():
        counts, source, target = _prepare(params, root)
    with tracking.stage_run(root, params.mlflow.experiment, NAME, DEPS) as run_:
        run_.log_params({"seed": params.seed, "data": d.model_dump(mode="json")})
        run_.log_metrics({f"n_{k}": v for k, v in counts.items()})
        run_.set_tags({"source.domain": source, "target.domain": target})
    return {"source": source, "target": target, **counts}


def _prepare(params: PipelineParams, root: Path) -> tuple[dict, str, str]:
    d = params.data
    source = harmonise(load_domain(d.source, seed=params.seed), d.image_size, d.channels)
    target = harmonise(load_domain(d.target, seed=params.seed), d.image_size, d.channels)
    check_same_label_space(source, target)
    if source.x.shape[1:] != target.x.shape[1:]:
        raise DataError(
            f"source '{source.name}' samples have shape {source.x.shape[1:]} but target '{target.name}' "
            f"samples have shape {target.x.shape[1:]}; feature-vector domains must share a dimension"
        )
    train, val = split_source(source, d.source_val_fraction, params.seed)
    tsplits = split_target(target, d.target_labels_per_class, d.target_test_fraction, params.seed)

    common = {"classes": list(source.classes), "sample_shape": list(source.x.shape[1:]), "seed": params.seed}
    with atomic_dir(root / PREPARED_SOURCE) as tmp:
        save_domain(train, tmp / "train.npz")
        save_domain(val, tmp / "val.npz")
        write_manifest(tmp, "source-splits", [], domain=source.name, counts={"train": len(train), "val": len(val)}, **common)
    with atomic_dir(root / PREPARED_TARGET) as tmp:
        save_domain(tsplits.labelled, tmp / "labelled.npz")
        save_domain(tsplits.unlabelled, tmp / "unlabelled.npz")
        write_manifest(tmp, "target-splits", [], domain=target.name,
                       labels_per_class=d.target_labels_per_class,
                       counts={"labelled": len(tsplits.labelled), "unlabelled": len(tsplits.unlabelled)}, **common)
    with atomic_dir(root / PREPARED_TEST) as tmp:
        save_domain(tsplits.test, tmp / "test.npz")
        write_manifest(tmp, "target-test", [], domain=target.name, counts={"test": len(tsplits.test)}, **common)

    counts = {"source_train": len(train), "source_val": len(val), "target_labelled": len(tsplits.labelled),
              "target_unlabelled": len(tsplits.unlabelled), "target_test": len(tsplits.test)}
    return counts, source.name, target.name
