"""adapt: run the selected method from the source model; train the baselines the evaluation needs.

When select chose a chain of intermediate domains (selection.json ``transitive``), the adapted
model is the last of its hops (tasks/transitive.py records and registers each hop).

With ``distributed.processes`` > 1 every training runs across processes (:mod:`tasks.distributed`):
this process checks that the method and the baselines can (one line naming the one that cannot),
starts the workers; rank 0 logs and writes, the others only train.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from transferlab.config import PipelineParams
from transferlab.data import TASK_TRANSFER
from transferlab.errors import MethodRequirementError
from transferlab.methods import get_method
from transferlab.methods.zero_shot import ZERO_SHOT_METHODS
from transferlab.models import load_model, save_model
from transferlab.training import AdaptResult
from tasks import distributed, intermediate, timing, tracking
from tasks.common import adapt_seeds, epoch_logger, input_example, train_settings
from tasks.data_files import adaptation_data, source_model_folder
from tasks.io import atomic_dir, read_json, write_manifest
from tasks.jobs import LOCAL, JobRunner, ProjectRef, staging_folder
from tasks.transitive import run_chain
from tasks.paths import (ADAPTED_MODEL, BASELINE_MODELS, PREPARED_INTERMEDIATE, PREPARED_SOURCE, PREPARED_TARGET,
                         SELECTION, SOURCE_MODEL)

NAME = "adapt"
DEPS = [SOURCE_MODEL, PREPARED_SOURCE, PREPARED_TARGET, PREPARED_INTERMEDIATE, SELECTION]


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
    few-shot baseline); with the source's classes and some labels, target-only. On the zero-shot road
    (new classes, no label, an attribute table) nothing can be trained on target labels: the bar is
    the other way of predicting through the table (dap for eszsl, eszsl for dap), and evaluate reports
    chance beside it."""
    if data.road == TASK_TRANSFER and data.target_labelled is None and data.class_attributes is not None:
        return list(ZERO_SHOT_METHODS)  # zero-shot: no label to train any other bar with; each is the other's
    if data.road == TASK_TRANSFER:
        return ["target-only", "linear-probe"]
    return ["target-only"] if data.target_labelled is not None else []


def seed_dir(folder: Path, seed: int) -> Path:
    """Where the model of an extra training seed lives inside a model folder."""
    return folder / f"seed-{seed}"


def seed_prefix(seed: int, seeds: list[int]) -> str:
    """What the per-epoch metrics of ``seed``'s trainings are prefixed with: nothing for the first seed."""
    return "" if seed == seeds[0] else f"seed-{seed}."


def _save_seeds(folder: Path, results: list, seeds: list[int], extra: dict) -> None:
    """The first seed's model in ``folder`` itself, every other seed's in its ``seed_dir``."""
    for i, (seed, res) in enumerate(zip(seeds, results)):
        save_model(res.model, folder if i == 0 else seed_dir(folder, seed), extra={**extra, "seed": seed})


def _check_distributed(method_cls, raw: dict, baselines: list[str], params: PipelineParams,
                       chain: dict | None) -> None:
    """Refuse, before any process starts, a method or baseline that cannot train across processes."""
    if chain is not None:
        raise MethodRequirementError("a chain of intermediate domains (select.transitive) trains in one process: "
                                     "set distributed.processes: 1")
    configs = [(method_cls, raw)] + [(get_method(n), params.adapt.methods.get(n, {})) for n in baselines]
    for cls, config in configs:
        if (problem := cls.distributed_problem(cls.make_config(config))) is not None:
            raise MethodRequirementError(f"{problem} (or set distributed.processes: 1)")


def _train_all(params: PipelineParams, method_cls, raw: dict, baselines: list[str], seeds: list[int],
               source_model, data, run_=None, chain: dict | None = None,
               root: Path = Path(".")) -> tuple[list, dict[str, list], dict]:
    """The chosen method (through its chain of hops when select chose one) and each baseline, once per
    seed; logged to ``run_`` when given. Also the chain's lineage tags ({} without a chain)."""
    results, trained, chain_tags = [], {name: [] for name in baselines}, {}
    pools = intermediate.read_pools(root) if chain is not None else {}
    for seed in seeds:
        settings = train_settings(params, params.adapt.train, seed=seed)
        prefix = seed_prefix(seed, seeds)
        with timing.work():
            if chain is not None:
                hops, tags = run_chain(params, root, chain, source_model, data, settings, fit_method, pools,
                                       run_=run_ if seed == seeds[0] else None)
                results.append(hops[-1].result)
                chain_tags = chain_tags or tags
            else:
                results.append(fit_method(method_cls.name, raw, source_model, data, settings,
                                          log=epoch_logger(run_, prefix) if run_ else None))
        for name in baselines:
            with timing.work():
                trained[name].append(fit_method(name, params.adapt.methods.get(name, {}), source_model, data,
                                                settings, log=epoch_logger(run_, f"{prefix}{name}.") if run_ else None))
    return results, trained, chain_tags


@dataclass(frozen=True)
class FitJob:
    """Train ``fits`` ((method, raw config) pairs) from the project's source model on its data with
    ``settings``; save each model atomically under ``out/NAME``. Only references travel."""

    ref: ProjectRef
    fits: tuple[tuple[str, dict], ...]
    settings: object  # TrainSettings
    out: str


def run_fit_job(job: FitJob) -> dict[str, dict]:
    """On a worker: each fit's record (history, checkpoint) by name; the models are in ``job.out``."""
    import torch

    torch.set_num_threads(1)
    records = {}
    for name, raw in job.fits:
        result = fit_method(name, raw, job.ref.source_model(), job.ref.data(), job.settings)
        with atomic_dir(Path(job.out) / name) as tmp:
            save_model(result.model, tmp)
        records[name] = {"history": result.history, "checkpoint_criterion": result.checkpoint_criterion,
                         "best_epoch": result.best_epoch, "best_score": result.best_score}
    return records


def fitted(job: FitJob, records: dict[str, dict]) -> dict:
    """A worker's results as the AdaptResults a local fit returns, models read from ``job.out``."""
    return {name: AdaptResult(model=load_model(Path(job.out) / name), **record) for name, record in records.items()}


def run_fit_jobs(runner: JobRunner, root: Path, within: Path, kind: str,
                 specs: list[tuple[str, tuple[tuple[str, dict], ...], object]]) -> list[dict]:
    """Each spec's AdaptResults by name: a spec (its folder name, its fits, their TrainSettings) is a
    :class:`FitJob` from ``root``'s source model and data, trained on ``runner``; the models are staged
    in a fresh ``root/within/.KIND-jobs-*`` folder, removed after."""
    ref = ProjectRef.of(root)
    with staging_folder(root, within, kind) as staging, timing.work():
        jobs = [FitJob(ref, fits, settings, str(staging / name)) for name, fits, settings in specs]
        return [fitted(job, records) for job, records in zip(jobs, runner.map(run_fit_job, jobs))]


def replay(run_, history: list[dict], prefix: str) -> None:
    """The per-epoch metrics a local fit logs as it trains, logged here from a worker's history."""
    log = epoch_logger(run_, prefix)
    for record in history:
        log(record["epoch"], {k: float(v) for k, v in record.items() if k != "epoch"})


def _train_seeds(params, root, run_, method_cls, raw, baselines, seeds, source_model, data, runner: JobRunner,
                 chain: dict | None):
    """(the chosen method's result per seed, each baseline's results per seed, the chain's lineage tags).
    A chain's hops register versions from this process, so a chain trains here whatever the runner."""
    if not runner.remote or chain is not None:
        return _train_all(params, method_cls, raw, baselines, seeds, source_model, data, run_, chain=chain, root=root)
    method = method_cls.name
    results, trained = [], {name: [] for name in baselines}
    fits = ((method, raw), *((name, params.adapt.methods.get(name, {})) for name in baselines))
    outcomes = run_fit_jobs(runner, root, ADAPTED_MODEL.parent, NAME,
                            [(f"seed-{seed}", fits, train_settings(params, params.adapt.train, seed=seed))
                             for seed in seeds])
    for seed, outcome in zip(seeds, outcomes):
        prefix = seed_prefix(seed, seeds)
        results.append(outcome[method])
        replay(run_, outcome[method].history, prefix)
        for name in baselines:
            trained[name].append(outcome[name])
            replay(run_, outcome[name].history, f"{prefix}{name}.")
    return results, trained, {}


def source_mixture(history: list[dict], names: list[str]) -> list[dict] | None:
    """A multi-source fit's weight per candidate source, by name (position 0 is the run's own source,
    then the other candidates in their order, as the method records them); None for other methods."""
    last = history[-1] if history else {}
    if "source_weight_0" not in last:
        return None
    return [{"name": name, "weight": float(last[f"source_weight_{i}"])} for i, name in enumerate(names)]


def run(params: PipelineParams, root: Path = Path("."), runner: JobRunner = LOCAL) -> dict:
    """``runner``: where the seeds train (execution.runner: dask hands each seed to a worker)."""
    selection = read_json(root / SELECTION, "the selection report")
    method_cls = get_method(selection["method"])
    raw = selection.get("method_params") or {}
    config = method_config(method_cls, raw)
    with timing.work():
        source_model = load_model(source_model_folder(root))
        data = adaptation_data(root)
    seeds = adapt_seeds(params)
    baselines = [name for name in trained_baselines(data) if name != method_cls.name]
    chain = selection.get("transitive") if (selection.get("transitive") or {}).get("use") else None
    if distributed.wanted(params):
        _check_distributed(method_cls, raw, baselines, params, chain)
        return distributed.launch(NAME, params, root)
    if distributed.worker_rank() != 0:  # trains its shards; rank 0 logs and writes
        _train_all(params, method_cls, raw, baselines, seeds, source_model, data)
        return {}

    with tracking.stage_run(root, params, NAME, DEPS) as run_:
        run_.log_params({"method": method_cls.name, "method_config": config.model_dump(),
                         "train": params.adapt.train.model_dump(), "seed": params.seed, "seeds": seeds})
        results, trained, chain_tags = _train_seeds(params, root, run_, method_cls, raw, baselines, seeds,
                                                    source_model, data, runner, chain)
        result = results[0]
        run_.set_tags({"method": method_cls.name, "checkpoint_criterion": result.checkpoint_criterion, **chain_tags})
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
                 "classes": json.dumps(list(data.target_classes)), **chain_tags})
        details = {"method": method_cls.name, "road": data.road, "config": config.model_dump(), "best_epoch": result.best_epoch,
                   "checkpoint_criterion": result.checkpoint_criterion, "checkpoint_score": result.best_score,
                   "seeds": seeds, "mlflow_run_id": run_.run_id, "mlflow_version": version}
        if chain is not None:
            details["transitive"] = {"chain": chain["chain"], "hop_method": chain["hop_method"], **chain_tags}
        # A project prepared before intermediate pools existed has no such folder: nothing of it was read.
        inputs = [dep for dep in DEPS if (root / dep).exists()]
        if chosen_source:
            details["source"] = chosen_source
        mixture = source_mixture(result.history, [chosen_source["name"] if chosen_source else "source",
                                                  *(o.name for o in data.other_sources)])
        if mixture:
            details["source_mixture"] = mixture
        with atomic_dir(root / ADAPTED_MODEL) as tmp:
            _save_seeds(tmp, results, seeds, {"role": "adapted", "method": method_cls.name})
            write_manifest(tmp, "adapted-model", inputs, root=root, **details)
        with atomic_dir(root / BASELINE_MODELS) as tmp:
            for name, runs in trained.items():
                _save_seeds(tmp / name, runs, seeds, {"role": "baseline", "method": name})
            write_manifest(tmp, "baseline-models", inputs, root=root, baselines=sorted(trained), seeds=seeds,
                           criteria={n: r[0].checkpoint_criterion for n, r in trained.items()})
    return {"method": method_cls.name, "mlflow_version": version, "checkpoint_criterion": result.checkpoint_criterion,
            "seeds": seeds}
