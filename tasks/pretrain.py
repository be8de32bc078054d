"""pretrain: train the source model with early stopping on source validation; save and register it."""

from __future__ import annotations

from pathlib import Path

from transferlab.config import PipelineParams
from transferlab.models import build_model, save_model
from transferlab.training import train_classifier
from tasks import timing, tracking
from tasks.common import epoch_logger, input_example, model_spec, train_settings
from tasks.data_files import source_splits
from tasks.io import atomic_dir, read_json, write_json, write_manifest
from tasks.paths import PREPARED_SOURCE, PRETRAIN_METRICS, SOURCE_MODEL, VALIDATION

NAME = "pretrain"
DEPS = [PREPARED_SOURCE, VALIDATION]


def run(params: PipelineParams, root: Path = Path(".")) -> dict:
    read_json(root / VALIDATION, "the validation report")  # the DAG's gate: validation must have passed
    with timing.work():
        train, val = source_splits(root)
    spec = model_spec(params, train)
    settings = train_settings(params, params.pretrain)
    with tracking.stage_run(root, params.mlflow.experiment, NAME, DEPS) as run_:
        run_.log_params({"seed": params.seed, "device": params.device, "model": spec.model_dump(),
                         "pretrain": params.pretrain.model_dump()})
        with timing.work():
            result = train_classifier(build_model(spec, seed=params.seed), train, val, settings,
                                      log=epoch_logger(run_))
        summary = {"source_val_accuracy": result.best_score, "best_epoch": result.best_epoch,
                   "epochs_run": len(result.history), "checkpoint_criterion": result.checkpoint_criterion}
        version = None
        if params.mlflow.register_models:
            version = run_.register_model(
                result.model, tracking.model_name(params.mlflow.model_prefix, "source"), input_example(train),
                {"role": "source", "run_id": run_.run_id, "source_val_accuracy": f"{result.best_score:.4f}"})
        with atomic_dir(root / SOURCE_MODEL) as tmp:
            save_model(result.model, tmp, extra={"role": "source", "mlflow_version": version})
            write_manifest(tmp, "source-model", [PREPARED_SOURCE], root=root, spec=spec.model_dump(),
                           mlflow_run_id=run_.run_id, mlflow_version=version, **summary)
        write_json(root / PRETRAIN_METRICS, summary)
        run_.log_metrics({"source_val_accuracy": result.best_score, "best_epoch": result.best_epoch})
        run_.set_tags({"checkpoint_criterion": result.checkpoint_criterion})
    return {**summary, "mlflow_version": version}
