"""adapt: run the selected method from the source model; train the baselines the evaluation needs."""

from __future__ import annotations

import json
from pathlib import Path

from transferlab.config import PipelineParams
from transferlab.data import TASK_TRANSFER
from transferlab.methods import get_method
from transferlab.models import load_model, save_model
from tasks import timing, tracking
from tasks.common import adapt_seeds, epoch_logger, input_example, train_settings
from tasks.data_files import adaptation_data, source_model_folder
from tasks.io import atomic_dir, read_json, write_manifest
from tasks.paths import ADAPTED_MODEL, BASELINE_MODELS, PREPARED_SOURCE, PREPARED_TARGET, SELECTION, SOURCE_MODEL

NAME = "adapt"
DEPS = [SOURCE_MODEL, PREPARED_SOURCE, PREPARED_TARGET, SELECTION]


def method_config(method_cls, raw: dict):
    """The method's config from params; an error names the params.yaml key."""
    return method_cls.make_config(raw, where=f"adapt.methods.{method_cls.name}")


def fit_method(name: str, raw_config: dict, source_model, data, settings, log=None):
    method_cls = get_method(name)
    return method_cls().fit(source_model, data, method_config(method_cls, raw_config), settings, log=log)


def trained_baselines(data) -> list[str]:
    """The baselines adapt trains for evaluate to compare with (source-only needs no training). On a
    new task the source head is useless, so the bar is what the target's labels reach without the
    source (target-only) and with its frozen features (the linear probe, Chen et al. 2019's strong
    few-shot baseline); with the source's classes and some labels, target-only."""
    if data.road == TASK_TRANSFER:
        return ["target-only", "linear-probe"]
    return ["target-only"] if data.target_labelled is not None else []


def seed_dir(folder: Path, seed: int) -> Path:
    """Where the model of an extra training seed lives inside a model folder."""
    return folder / f"seed-{seed}"


def _save_seeds(folder: Path, results: list, seeds: list[int], extra: dict) -> None:
    """The first seed's model in ``folder`` itself, every other seed's in its ``seed_dir``."""
    for i, (seed, res) in enumerate(zip(seeds, results)):
        save_model(res.model, folder if i == 0 else seed_dir(folder, seed), extra={**extra, "seed": seed})


def run(params: PipelineParams, root: Path = Path(".")) -> dict:
    selection = read_json(root / SELECTION, "the selection report")
    method_cls = get_method(selection["method"])
    raw = selection.get("method_params") or {}
    config = method_config(method_cls, raw)
    with timing.work():
        source_model = load_model(source_model_folder(root))
        data = adaptation_data(root)
    seeds = adapt_seeds(params)
    baselines = [name for name in trained_baselines(data) if name != method_cls.name]

    with tracking.stage_run(root, params, NAME, DEPS) as run_:
        run_.log_params({"method": method_cls.name, "method_config": config.model_dump(),
                         "train": params.adapt.train.model_dump(), "seed": params.seed, "seeds": seeds})
        results, trained = [], {name: [] for name in baselines}
        for seed in seeds:
            settings = train_settings(params, params.adapt.train, seed=seed)
            prefix = "" if seed == seeds[0] else f"seed-{seed}."
            with timing.work():
                results.append(fit_method(method_cls.name, raw, source_model, data, settings,
                                          log=epoch_logger(run_, prefix)))
            for name in baselines:
                with timing.work():
                    trained[name].append(fit_method(name, params.adapt.methods.get(name, {}), source_model, data,
                                                    settings, log=epoch_logger(run_, f"{prefix}{name}.")))
        result = results[0]
        run_.set_tags({"method": method_cls.name, "checkpoint_criterion": result.checkpoint_criterion})
        chosen_source = selection.get("source")  # several candidate sources: the one select chose
        if chosen_source:
            run_.set_tags({"source.candidate": chosen_source["name"]})
        run_.log_metrics({"best_epoch": result.best_epoch, "checkpoint_score": result.best_score})
        version = None
        if params.mlflow.register_models:
            version = run_.register_model(
                result.model, tracking.model_name(params.mlflow.model_prefix, "adapted"), input_example(data.source_train, data.target_unlabelled, data.target_labelled),
                {"role": "adapted", "method": method_cls.name, "run_id": run_.run_id, "seed": seeds[0],
                 "checkpoint_criterion": result.checkpoint_criterion, "road": data.road,
                 "classes": json.dumps(list(data.target_classes))})
        details = {"method": method_cls.name, "road": data.road, "config": config.model_dump(), "best_epoch": result.best_epoch,
                   "checkpoint_criterion": result.checkpoint_criterion, "checkpoint_score": result.best_score,
                   "seeds": seeds, "mlflow_run_id": run_.run_id, "mlflow_version": version}
        if chosen_source:
            details["source"] = chosen_source
        with atomic_dir(root / ADAPTED_MODEL) as tmp:
            _save_seeds(tmp, results, seeds, {"role": "adapted", "method": method_cls.name})
            write_manifest(tmp, "adapted-model", DEPS, root=root, **details)
        with atomic_dir(root / BASELINE_MODELS) as tmp:
            for name, runs in trained.items():
                _save_seeds(tmp / name, runs, seeds, {"role": "baseline", "method": name})
            write_manifest(tmp, "baseline-models", DEPS, root=root, baselines=sorted(trained), seeds=seeds,
                           criteria={n: r[0].checkpoint_criterion for n, r in trained.items()})
    return {"method": method_cls.name, "mlflow_version": version, "checkpoint_criterion": result.checkpoint_criterion,
            "seeds": seeds}
