"""pretrain: train the source model with early stopping on source validation, or import the one
the user already has (``model.pretrained``); save it and register it as a source version.

With ``distributed.processes`` > 1 the training runs across processes (:mod:`tasks.distributed`):
this process starts them, rank 0 logs and writes, the others only train. An imported model is not
retrained, so it ignores ``distributed``.

An imported model is not retrained: it is loaded safely, hashed (lineage tag and manifest),
recorded with where it came from, checked against the source data's classes when there is
source data (and scored on its validation split), and registered like a trained one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from transferlab.config import PipelineParams
from transferlab.data.attributes import ClassAttributes, seen_attribute_targets
from transferlab.errors import DataError
from transferlab.models import build_model, save_model
from transferlab.training import accuracy, train_classifier
from tasks import distributed, timing, tracking
from tasks.common import epoch_logger, input_example, model_spec, train_settings
from tasks.data_files import source_manifest, source_splits, target_splits
from tasks.io import atomic_dir, read_json, write_json, write_manifest
from tasks.paths import CANDIDATES, PREPARED_SOURCE, PRETRAIN_METRICS, PRETRAINED_DIR, SOURCE_MODEL, VALIDATION

NAME = "pretrain"
DEPS = [PREPARED_SOURCE, VALIDATION, PRETRAINED_DIR]


def run(params: PipelineParams, root: Path = Path(".")) -> dict:
    read_json(root / VALIDATION, "the validation report")  # the DAG's gate: validation must have passed
    if params.model.pretrained is not None:
        return _import(params, root)
    if params.data.sources is not None:
        return _train_candidates(params, root)
    if distributed.wanted(params):
        return distributed.launch(NAME, params, root)
    with timing.work():
        train, val = source_splits(root)
    spec = model_spec(params, train)
    settings = train_settings(params, params.pretrain)
    rows = _attribute_targets(params, root, train)
    if rows is not None:
        spec = spec.model_copy(update={"attribute_head": rows.shape[1]})
    if distributed.worker_rank() != 0:  # trains its shard; rank 0 logs and writes
        train_classifier(build_model(spec, seed=params.seed), train, val, settings, class_attributes=rows)
        return {}
    with tracking.stage_run(root, params, NAME, DEPS) as run_:
        run_.log_params({"seed": params.seed, "device": params.device, "model": spec.model_dump(),
                         "pretrain": params.pretrain.model_dump(), "distributed": params.distributed.model_dump()})
        with timing.work():
            result = train_classifier(build_model(spec, seed=params.seed), train, val, settings,
                                      log=epoch_logger(run_), class_attributes=rows)
        summary = {"source_val_accuracy": result.best_score, "best_epoch": result.best_epoch,
                   "epochs_run": len(result.history), "checkpoint_criterion": result.checkpoint_criterion}
        _save_and_register(params, root, run_, result.model, input_example(train), summary)
    return summary


def _attribute_targets(params: PipelineParams, root: Path, train) -> np.ndarray | None:
    """The seen classes' binarised attribute rows when prepare recorded a table and
    ``pretrain.attribute_weight`` > 0 (attribute-supervised source training), else None. The source
    manifest holds the seen classes' rows only: an unseen class's row cannot reach the source model."""
    raw = source_manifest(root).get("attributes")
    if raw is None or params.pretrain.attribute_weight == 0:
        return None
    return seen_attribute_targets(ClassAttributes.from_dict(raw), train.classes)


def _save_and_register(params: PipelineParams, root: Path, run_, model, example, summary: dict) -> None:
    version = _register(params, run_, model, example, summary)
    summary["mlflow_version"] = version
    with atomic_dir(root / SOURCE_MODEL) as tmp:
        save_model(model, tmp, extra={"role": "source", "mlflow_version": version})
        write_manifest(tmp, "source-model", [PREPARED_SOURCE], root=root, spec=model.spec.model_dump(),
                       mlflow_run_id=run_.run_id, **summary)
    write_json(root / PRETRAIN_METRICS, {k: v for k, v in summary.items() if k != "mlflow_version"})
    run_.log_metrics({k: v for k, v in summary.items() if k in ("source_val_accuracy", "best_epoch")})


def _register(params: PipelineParams, run_, model, example, summary: dict, **tags: str) -> str | None:
    """Register ``model`` as a new source version (None when registration is off), tagged with its
    role, run, classes, validation accuracy, import origin and any extra ``tags``."""
    if not params.mlflow.register_models:
        return None
    tags = {"role": "source", "run_id": run_.run_id, **tags, "classes": json.dumps(list(model.classes))}
    if summary.get("source_val_accuracy") is not None:
        tags["source_val_accuracy"] = f"{summary['source_val_accuracy']:.4f}"
    if "imported" in summary:
        tags.update({f"imported.{k}": v for k, v in summary["imported"].items()})
    return run_.register_model(model, tracking.model_name(params.mlflow.model_prefix, "source"), example, tags)


def _import(params: PipelineParams, root: Path) -> dict:
    from tasks.pretrained import import_pretrained, untracked_note

    with timing.work():
        imported = import_pretrained(params, root)
        source = source_splits(root)
        expected = tuple(source_manifest(root)["classes"])
        if imported.classes != expected:
            raise DataError(f"the imported model's classes ({', '.join(imported.classes[:6])}"
                            f"{', …' if len(imported.classes) > 6 else ''}) are not the source classes prepare "
                            f"recorded ({', '.join(expected[:6])}{', …' if len(expected) > 6 else ''})")
        val_accuracy = accuracy(imported.model, source[1]) if source is not None else None
    summary = {"source_val_accuracy": val_accuracy, "best_epoch": 0, "epochs_run": 0,
               "checkpoint_criterion": f"none: imported ({imported.origin['kind']}), not retrained",
               "imported": imported.origin}
    with tracking.stage_run(root, params, NAME, DEPS) as run_:
        run_.log_params({"seed": params.seed, "model": imported.model.spec.model_dump(),
                         "pretrained": params.model.pretrained.model_dump(mode="json")})
        run_.set_tags({f"import.{k}": v for k, v in imported.origin.items()})
        example = input_example(source[0] if source is not None else None, *target_splits(root))
        _save_and_register(params, root, run_, imported.model, example, summary)
    note = untracked_note(imported.origin)
    if note:
        print(note, file=sys.stderr)
    return summary


def _train_candidates(params: PipelineParams, root: Path) -> dict:
    """One source model per candidate source (data.sources): a dataset's trained as a single source's
    would be, a model imported as model.pretrained would be; each registered as a source version
    tagged with its candidate, saved to models/source/candidates/<i>/."""
    names = source_manifest(root)["candidates"]
    summaries: dict[str, dict] = {}
    with tracking.stage_run(root, params, NAME, DEPS) as run_:
        run_.log_params({"seed": params.seed, "device": params.device, "pretrain": params.pretrain.model_dump(),
                         "source_candidates": names})
        with atomic_dir(root / SOURCE_MODEL) as tmp:
            for i, name in enumerate(names):
                model, example, summary = _candidate_model(params, root, run_, i)
                summary = {"candidate": name, **summary}
                version = _register(params, run_, model, example, summary, candidate=name)
                folder = tmp / CANDIDATES / str(i)
                folder.mkdir(parents=True)
                save_model(model, folder, extra={"role": "source", "candidate": name, "mlflow_version": version})
                write_manifest(folder, "source-model", [PREPARED_SOURCE], root=root, spec=model.spec.model_dump(),
                               mlflow_run_id=run_.run_id, mlflow_version=version, **summary)
                summaries[name] = summary
                if summary["source_val_accuracy"] is not None:
                    run_.log_metrics({f"candidate_{i}.source_val_accuracy": summary["source_val_accuracy"]})
            write_manifest(tmp, "source-candidate-models", [PREPARED_SOURCE], root=root, candidates=names,
                           mlflow_run_id=run_.run_id)
    write_json(root / PRETRAIN_METRICS, {"candidates": summaries})
    return {"candidates": {name: s["source_val_accuracy"] for name, s in summaries.items()}}


def _candidate_model(params: PipelineParams, root: Path, run_, i: int):
    """(model, input example, summary) of candidate ``i``: trained on its data, or imported when the
    candidate is a model (it has no data)."""
    splits = source_splits(root, i)
    if splits is None:
        from tasks.pretrained import import_model, untracked_note

        with timing.work():
            imported = import_model(params.data.sources[i].model, params, root, f"data.sources[{i}].model")
        if note := untracked_note(imported.origin):
            print(note, file=sys.stderr)
        return imported.model, input_example(None, *target_splits(root)), {
            "source_val_accuracy": None, "best_epoch": 0, "epochs_run": 0,
            "checkpoint_criterion": f"none: imported ({imported.origin['kind']}), not retrained",
            "imported": imported.origin}
    train, val = splits
    with timing.work():
        result = train_classifier(build_model(model_spec(params, train), seed=params.seed), train, val,
                                  train_settings(params, params.pretrain), log=epoch_logger(run_, prefix=f"candidate_{i}."))
    return result.model, input_example(train), {
        "source_val_accuracy": result.best_score, "best_epoch": result.best_epoch, "epochs_run": len(result.history),
        "checkpoint_criterion": result.checkpoint_criterion}
