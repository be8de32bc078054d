"""select: from the similarity report and the label budget to one transfer method, with reasons.

Rule mode reads only the reports. Trial mode also runs short, budgeted trials of the candidates
from the source model (successive halving), scored on target labelled data or label-free
validators, never on the target test split; each trial is a nested MLflow run.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import mlflow
from mlflow.tracking import MlflowClient

from transferlab.config import PipelineParams
from transferlab.methods import get_method
from transferlab.models import load_model
from transferlab.selection import SelectionConfig, select_by_rules, select_by_trials
from transferlab.selection.transitive import SELF_TRAINING, decide_transitive
from transferlab.selection.zero_shot import is_zero_shot, select_zero_shot
from transferlab.transitive.self_training import SelfTrainingConfig
from tasks import timing, tracking
from tasks.jobs import JobRunner, ProjectRef, shipping, staging_folder
from tasks.trial_runs import LoggedTrial, TrialRuns, logs_directly, score_logger, stage_logger
from tasks.common import train_settings
from tasks.data_files import adaptation_data, source_model_folder
from tasks.io import read_json, write_json
from tasks.paths import MANIFEST, PREPARED_SOURCE, PREPARED_TARGET, SELECTION, SIMILARITY, SOURCE_MODEL

NAME = "select"
DEPS = [SIMILARITY, PREPARED_TARGET, PREPARED_SOURCE, SOURCE_MODEL]

MapFn = Callable[[Callable, list], list]


def selection_config(params: PipelineParams) -> SelectionConfig:
    values = params.select.model_dump(exclude={"workers"})
    return SelectionConfig(**{**values, "seed": params.seed})


def thread_map(workers: int) -> MapFn:
    def map_fn(fn, jobs):
        if workers == 1 or len(jobs) < 2:
            return [fn(job) for job in jobs]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(fn, jobs))
    return map_fn


def _trial_map(params: PipelineParams, root: Path, map_fn: MapFn | None, runner: JobRunner | None,
               candidate: int | None, runs: TrialRuns, states: Path) -> MapFn:
    if runner is None:
        return map_fn or thread_map(params.select.workers)
    shipped = shipping(runner, ProjectRef.of(root, candidate), states)
    if _workers_log(runner, runs):
        return lambda fn, jobs: shipped(LoggedTrial(runs, fn), jobs)
    return shipped


def _workers_log(runner: JobRunner | None, runs: TrialRuns) -> bool:
    """Whether the trials' runs are written by the workers themselves (tasks/trial_runs.py)."""
    return runner is not None and runner.remote and logs_directly(runs.uri)


def _trial_runs(run_, runner: JobRunner | None) -> tuple[TrialRuns, Callable[[dict], None]]:
    """Where the trials' nested runs go, and what the stage itself writes of each (tasks/trial_runs.py)."""
    client = MlflowClient()
    runs = TrialRuns(mlflow.get_tracking_uri(), client.get_run(run_.run_id).info.experiment_id, run_.run_id)
    return runs, score_logger(runs) if _workers_log(runner, runs) else stage_logger(runs)


def transitive_choice(report: dict, method: str, config: SelectionConfig) -> dict:
    """Direct or in hops, through which intermediates, and why (transferlab/selection/transitive.py)."""
    chain = report["transitive"]
    decision, hop = decide_transitive(chain, road=report.get("road"), chosen_method=method,
                                      p_value=(report.get("mmd") or {}).get("p_value"), alpha=config.alpha,
                                      config=config.transitive)
    return {**decision.to_dict(), "hop_method": hop, "candidates": list(chain.get("intermediates") or []),
            "distance": f"MMD (one kernel), {chain.get('feature_layer', '?')} features of the source model"}


def hop_params(params: PipelineParams, hop: str, payload: dict) -> dict:
    """The hops' hyperparameters, written beside the choice as method_params is (adapt reads them there)."""
    if hop == SELF_TRAINING:
        # the schema's defaults reach the hops through this dump, hence the import (and the DVC code dep)
        settings: SelfTrainingConfig = params.adapt.self_training
        return settings.model_dump()
    return payload["method_params"] if hop == payload["method"] else dict(params.adapt.methods.get(hop, {}))


def chosen_source_entry(report: dict) -> dict | None:
    """With several candidate sources, the first of the similarity stage's ranking, and why; else None."""
    ranking = report.get("source_ranking")
    if not ranking:
        return None
    first = ranking["ranking"][0]
    why = (f"Source: '{first['name']}' is ranked first of {len(ranking['ranking'])} candidates by {ranking['rule_text']}. "
           f"{first['reason']}")
    return {"index": first["index"], "name": first["name"], "rule": ranking["rule"], "score": first["score"],
            "why": why, "ranking": [{k: r[k] for k in ("rank", "index", "name", "score", "reason")}
                                    for r in ranking["ranking"]]}


def method_params(params: PipelineParams, method: str, settings: dict) -> dict:
    """What adapt trains ``method`` with: params.yaml's adapt.methods entry, overridden by what selection
    chose; an ensemble's members likewise, each from its own method's entry."""
    merged = {**params.adapt.methods.get(method, {}), **settings}
    if get_method(method).composite:  # chosen by trials (settings) or forced (params.yaml): the same merge
        merged["members"] = [
            {"method": m["method"], "settings": method_params(params, m["method"], m.get("settings") or {})}
            for m in merged.get("members", [])]
    return merged


def run(params: PipelineParams, root: Path = Path("."), map_fn: MapFn | None = None,
        runner: JobRunner | None = None) -> dict:
    """``map_fn`` runs the trials (default: ``select.workers`` threads); a ``runner`` (execution.runner:
    dask) runs them in other processes, each shipped with references to the project's files."""
    report = read_json(root / SIMILARITY, "the similarity report")
    manifest = read_json(root / PREPARED_TARGET / MANIFEST, "the target manifest")
    k = int(manifest["labels_per_class"])
    n_classes = len(manifest["classes"])
    config = selection_config(params)
    with tracking.stage_run(root, params, NAME, DEPS) as run_:
        run_.log_params({"select": params.select.model_dump(mode="json"), "labels_per_class": k})
        source = chosen_source_entry(report)
        candidate = source["index"] if source else None
        spaces = manifest.get("label_spaces") or {}
        if is_zero_shot(manifest.get("road", ""), k, manifest.get("attributes"), spaces.get("new_classes")):
            # No target label to score a trial with, and no label-free validator that speaks for
            # classes the model never saw: both modes take the zero-shot rule.
            note = ("Trial mode has nothing to score trials with here (no target label), so the zero-shot rule "
                    "decides." if config.mode == "trial" else None)
            selection = select_zero_shot({**report, "label_spaces": spaces}, manifest["attributes"], config, note)
        elif config.mode == "trial":
            runs, on_trial = _trial_runs(run_, runner)
            with timing.work(), staging_folder(root, SOURCE_MODEL.parent, NAME) as states:
                selection = select_by_trials(load_model(source_model_folder(root, candidate)),
                                             adaptation_data(root, candidate),
                                             train_settings(params, params.adapt.train), config, report=report,
                                             map_fn=_trial_map(params, root, map_fn, runner, candidate, runs, states),
                                             on_trial=on_trial)
        else:
            with timing.work():
                selection = select_by_rules(report, k, n_classes, config)
        payload = selection.to_dict()
        payload["method_params"] = method_params(params, selection.method, payload.get("settings") or {})
        if "transitive" in report:
            payload["transitive"] = transitive_choice(report, selection.method, config)
            payload["transitive"]["hop_params"] = hop_params(params, payload["transitive"]["hop_method"], payload)
            run_.set_tags({"transitive": payload["transitive"]["use"],
                           "transitive.chain": " > ".join(payload["transitive"]["chain"]) or "direct"})
        if source:
            payload["source"] = source
            payload["reasons"] = [source["why"], *payload.get("reasons", [])]
            run_.set_tags({"selected_source": source["name"]})
            run_.tag_parent({"selected_source": source["name"]})
        write_json(root / SELECTION, payload)
        run_.set_tags({"selected_method": selection.method, "selection_mode": config.mode,
                       "decided_by": payload.get("decided_by", "rules")})
        if payload.get("cost"):
            run_.log_metrics({f"cost.{key}": v for key, v in payload["cost"].items()})
        run_.log_artifact(root / SELECTION)
        run_.tag_parent({"selected_method": selection.method})
    summary = {"method": selection.method, "reasons": payload.get("reasons", [])}
    if "transitive" in payload:
        summary["transitive"] = payload["transitive"]["reason"]
    if source:
        summary["source"] = source["name"]
    return summary
