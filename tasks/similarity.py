"""similarity: how far apart are the domains, as seen by the source model?"""

from __future__ import annotations

import numpy as np
from pathlib import Path

from transferlab.config import PipelineParams
from transferlab.data import Domain
from transferlab.models import load_model
from transferlab.similarity import SimilarityConfig, similarity_report
from tasks import timing, tracking
from tasks.data_files import source_splits, target_splits
from tasks.io import atomic_dir, write_json
from tasks.paths import (PREPARED_SOURCE, PREPARED_TARGET, SIMILARITY, SIMILARITY_METRICS, SIMILARITY_PLOTS,
                         SOURCE_MODEL)

NAME = "similarity"
DEPS = [SOURCE_MODEL, PREPARED_SOURCE, PREPARED_TARGET]


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
    with timing.work():
        model = load_model(root / SOURCE_MODEL)
        train, _ = source_splits(root)
        labelled, unlabelled = target_splits(root)
        target = target_pool(labelled, unlabelled)
    with tracking.stage_run(root, params.mlflow.experiment, NAME, DEPS) as run_:
        run_.log_params({"similarity": params.similarity.model_dump(), "seed": params.seed})
        with atomic_dir(root / SIMILARITY_PLOTS) as plots:
            with timing.work():
                report = similarity_report(model, train, target, labelled, config=similarity_config(params),
                                           plots_dir=plots if params.similarity.plots else None)
            write_json(root / SIMILARITY, report)
        mmd = report["mmd"]
        headline = {"mmd2": mmd["mmd2"], "mmd_p_value": mmd["p_value"], "mmd_normalised": mmd.get("normalised"),
                    "a_distance": report.get("a_distance"), "coral": report.get("coral")}
        for layer in report.get("layers", []):
            headline[f"layer_mmd2.{layer['layer']}"] = layer["mmd2"]
        for key, value in (report.get("transferability") or {}).items():
            headline[f"transferability.{key}"] = value
        run_.log_metrics(headline)
        write_json(root / SIMILARITY_METRICS, {k: v for k, v in headline.items() if not k.startswith("layer_")})
        run_.log_artifact(root / SIMILARITY)
        run_.log_artifact(root / SIMILARITY_PLOTS, "plots")
    return {"mmd2": mmd["mmd2"], "p_value": mmd["p_value"]}
