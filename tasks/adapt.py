"""adapt: run the selected method from the source model; train the baselines the evaluation needs."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from transferlab.config import PipelineParams
from transferlab.errors import ConfigError
from transferlab.methods import AdaptationData, get_method
from transferlab.models import load_model, save_model
from tasks import timing, tracking
from tasks.common import epoch_logger, input_example, train_settings
from tasks.data_files import source_splits, target_splits
from tasks.io import atomic_dir, read_json, write_manifest
from tasks.paths import ADAPTED_MODEL, BASELINE_MODELS, PREPARED_SOURCE, PREPARED_TARGET, SELECTION, SOURCE_MODEL

NAME = "adapt"
DEPS = [SOURCE_MODEL, PREPARED_SOURCE, PREPARED_TARGET, SELECTION]


def method_config(method_cls, raw: dict):
    try:
        return method_cls.Config(**raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"adapt.methods.{method_cls.name}.{key}: {err['msg']}") from None


def run(params: PipelineParams, root: Path = Path(".")) -> dict:
    selection = read_json(root / SELECTION, "the selection report")
    method_cls = get_method(selection["method"])
    config = method_config(method_cls, selection.get("method_params") or {})
    source_model = load_model(root / SOURCE_MODEL)
    train, val = source_splits(root)
    labelled, unlabelled = target_splits(root)
    data = AdaptationData(source_train=train, source_val=val, target_labelled=labelled, target_unlabelled=unlabelled)
    settings = train_settings(params, params.adapt.train)
    baselines = []
    if labelled is not None and method_cls.name != "target-only":
        baselines.append("target-only")

    with tracking.stage_run(root, params.mlflow.experiment, NAME, DEPS) as run_:
        run_.log_params({"method": method_cls.name, "method_config": config.model_dump(),
                         "train": params.adapt.train.model_dump(), "seed": params.seed})
        with timing.work():
            result = method_cls().fit(source_model, data, config, settings, log=epoch_logger(run_))
        run_.set_tags({"method": method_cls.name, "checkpoint_criterion": result.checkpoint_criterion})
        run_.log_metrics({"best_epoch": result.best_epoch, "checkpoint_score": result.best_score})
        trained = {}
        for name in baselines:
            base_cls = get_method(name)
            with timing.work():
                trained[name] = base_cls().fit(source_model, data, method_config(base_cls, params.adapt.methods.get(name, {})),
                                               settings, log=epoch_logger(run_, f"{name}."))
        version = None
        if params.mlflow.register_models:
            version = run_.register_model(
                result.model, tracking.model_name(params.mlflow.model_prefix, "adapted"), input_example(train),
                {"role": "adapted", "method": method_cls.name, "run_id": run_.run_id,
                 "checkpoint_criterion": result.checkpoint_criterion})
        details = {"method": method_cls.name, "config": config.model_dump(), "best_epoch": result.best_epoch,
                   "checkpoint_criterion": result.checkpoint_criterion, "checkpoint_score": result.best_score,
                   "mlflow_run_id": run_.run_id, "mlflow_version": version}
        with atomic_dir(root / ADAPTED_MODEL) as tmp:
            save_model(result.model, tmp, extra={"role": "adapted", "method": method_cls.name})
            write_manifest(tmp, "adapted-model", DEPS, root=root, **details)
        with atomic_dir(root / BASELINE_MODELS) as tmp:
            for name, res in trained.items():
                (tmp / name).mkdir()
                save_model(res.model, tmp / name, extra={"role": "baseline", "method": name})
            write_manifest(tmp, "baseline-models", DEPS, root=root, baselines=sorted(trained),
                           criteria={n: r.checkpoint_criterion for n, r in trained.items()})
    return {"method": method_cls.name, "mlflow_version": version, "checkpoint_criterion": result.checkpoint_criterion}
