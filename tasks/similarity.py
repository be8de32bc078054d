"""similarity: how far apart are the domains, as seen by the source model?

With several candidate sources (``data.sources``) every candidate is first measured against the
target with its own model and ranked (:mod:`transferlab.similarity.sources`); the full report is
then the first-ranked candidate's, with the ranking in it (``source_ranking``) and beside the plots.
"""

from __future__ import annotations

import numpy as np
from pathlib import Path

from transferlab.config import PipelineParams
from transferlab.data import Domain
from transferlab.models import load_model
from transferlab.progress import note
from transferlab.similarity import SimilarityConfig, measure_model, measure_source, rank_sources, similarity_report
from transferlab.similarity.chain import chain_report
from tasks import intermediate, timing, tracking
from tasks.data_files import source_manifest, source_model_folder, source_splits, target_splits
from tasks.io import atomic_dir, read_json, write_json
from tasks.paths import (MANIFEST, PREPARED_INTERMEDIATE, PREPARED_SOURCE, PREPARED_TARGET, SIMILARITY,
                         SIMILARITY_METRICS, SIMILARITY_PLOTS, SOURCE_MODEL)

# With several candidate sources: the ranking, beside the plots (also in reports/similarity.json).
SOURCE_RANKING = "source_ranking.json"

NAME = "similarity"
DEPS = [SOURCE_MODEL, PREPARED_SOURCE, PREPARED_TARGET, PREPARED_INTERMEDIATE]


def target_pool(labelled: Domain | None, unlabelled: Domain | None) -> Domain:
    """Every target sample the pipeline may look at before evaluation (never the test split)."""
    parts = [d for d in (labelled, unlabelled) if d is not None]
    return Domain(parts[0].name, np.concatenate([d.x for d in parts]), np.concatenate([d.y for d in parts]),
                  parts[0].classes)


def similarity_config(params: PipelineParams) -> SimilarityConfig:
    s = params.similarity
    return SimilarityConfig(permutations=s.permutations, max_samples=s.max_samples, estimator=s.estimator,
                            alpha=s.alpha, bootstrap=s.bootstrap, dtype=s.dtype, seed=params.seed)


def run(params: PipelineParams, root: Path = Path(".")) -> dict:
    candidates = source_manifest(root).get("candidates")
    with timing.work():
        labelled, unlabelled = target_splits(root)
        target = target_pool(labelled, unlabelled)
    with tracking.stage_run(root, params, NAME, DEPS) as run_:
        run_.log_params({"similarity": params.similarity.model_dump(), "seed": params.seed})
        ranking = None
        with timing.work():
            if candidates is not None:
                ranking, model, source = rank_candidates(params, root, candidates, unlabelled or target, labelled)
            else:
                model, source = load_model(source_model_folder(root)), source_splits(root)
            train = source[0] if source is not None else None
        if ranking:
            log_ranking(run_, ranking)
        with atomic_dir(root / SIMILARITY_PLOTS) as plots:
            with timing.work():
                report = similarity_report(model, train, target, labelled, config=similarity_config(params),
                                           plots_dir=plots if params.similarity.plots else None)
                if (chain := _chain(params, root, model, train, target)) is not None:
                    report["transitive"] = chain
            if ranking:
                report["source_ranking"] = ranking
                write_json(plots / SOURCE_RANKING, ranking)
            write_json(root / SIMILARITY, report)
        headline = headline_metrics(report)
        run_.log_metrics(headline)
        run_.set_tags({"road": report["road"], "source_data": report["source_data"]})
        write_json(root / SIMILARITY_METRICS, {k: v for k, v in headline.items() if not k.startswith(("layer_", "block_"))})
        run_.log_artifact(root / SIMILARITY)
        run_.log_artifact(root / SIMILARITY_PLOTS, "plots")
    mmd = report.get("mmd") or {}
    summary = {"road": report["road"], "mmd2": mmd.get("mmd2"), "p_value": mmd.get("p_value"),
               "depth": (report.get("depth") or {}).get("reason")}
    if ranking:
        summary["source_ranking"] = [r["name"] for r in ranking["ranking"]]
    return summary


def rank_candidates(params: PipelineParams, root: Path, names: list[str], target: Domain,
                    labelled: Domain | None) -> tuple[dict, object, tuple[Domain, Domain] | None]:
    """Measure every candidate source, with its own model, against the target; rank them
    (:func:`transferlab.similarity.rank_sources`). ``target``: the unlabelled pool. Returns the
    ranking and the first-ranked candidate's model and (train, val) splits (None for a model
    without data), already read here."""
    config = similarity_config(params)
    measured, loaded = [], []
    for i, name in enumerate(names):
        folder = source_model_folder(root, i)
        model = load_model(folder)
        splits = source_splits(root, i)
        loaded.append((model, splits))
        extra = ", transferability" if labelled is not None else ""
        if splits is None:  # a model without data
            note("candidate source %d/%d '%s' (a model): its predictions on the target%s", i + 1, len(names), name,
                 extra)
            measured.append({"name": name, **measure_model(model, target, labelled, config=config)})
            continue
        val_accuracy = read_json(folder / MANIFEST, f"the manifest of {folder}")["source_val_accuracy"]
        note("candidate source %d/%d '%s': MMD test, A-distances%s", i + 1, len(names), name, extra)
        measured.append({"name": name, **measure_source(model, splits[0], target, labelled,
                                                        source_val_accuracy=val_accuracy, config=config)})
    ranking = rank_sources(measured)
    for entry in ranking["ranking"]:
        note("%s", entry["reason"])
    return (ranking, *loaded[ranking["chosen_index"]])


def log_ranking(run_, ranking: dict) -> None:
    """The ranking in MLflow: order and rule as params, each candidate's score as a metric."""
    run_.log_params({"source_ranking.rule": ranking["rule"],
                     "source_ranking.order": [r["name"] for r in ranking["ranking"]]})
    run_.log_metrics({f"source_candidate_{r['index']}.score": r["score"] for r in ranking["ranking"]}
                     | {f"source_candidate_{r['index']}.rank": r["rank"] for r in ranking["ranking"]})
    run_.set_tags({"source.chosen": ranking["chosen"]})


def _chain(params: PipelineParams, root: Path, model, source: Domain | None, target: Domain) -> dict | None:
    """Distances source → each intermediate → target (select decides on them), or why there are none."""
    pools = intermediate.read_pools(root)
    if not pools:
        return None
    if source is None:
        return {"skipped": "there is no source data (only a source model) to measure the hops from"}
    return chain_report(model, source.x, target.x, {n: d.x for n, d in pools.items()},
                        max_samples=params.similarity.max_samples, seed=params.seed)


def headline_metrics(report: dict) -> dict:
    """The numbers MLflow and `dvc metrics show` get (flat; the per-layer ones only in MLflow)."""
    headline: dict = {}
    if report.get("mmd"):
        mmd = report["mmd"]
        headline.update(mmd2=mmd["mmd2"], mmd_p_value=mmd["p_value"], mmd_normalised=mmd.get("normalised"),
                        a_distance=report.get("a_distance"), coral=report.get("coral"))
    for layer in report.get("layers") or []:
        headline[f"layer_mmd2.{layer['layer']}"] = layer["mmd2"]
    if report.get("normalisation"):
        headline["bn_symmetric_kl"] = report["normalisation"]["mean_symmetric_kl"]
        headline.update({f"prediction.{k}": v for k, v in report["predictions"].items() if k != "predicted_shares"})
    for key, value in (report.get("transferability") or {}).items():
        headline[f"transferability.{key}"] = value
    for block in report.get("block_transferability") or []:
        headline[f"block_logme.{block['layer']}"] = block["logme"]
    if report.get("depth"):
        headline["suggested_depth"] = report["depth"]["k"]
    chain = report.get("transitive") or {}
    for i, name in enumerate(chain.get("intermediates") or []):
        headline[f"chain_mmd.source-intermediate_{i}"] = chain["mmd"]["source"][name]
        headline[f"chain_mmd.intermediate_{i}-target"] = chain["mmd"][name]["target"]
    if chain.get("mmd"):
        headline["chain_mmd.source-target"] = chain["mmd"]["source"]["target"]
    return headline
