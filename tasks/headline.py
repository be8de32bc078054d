"""The headline metrics: a flat, short file of numbers (reports/metrics.json) that DVC compares
across commits and experiments (`dvc metrics show/diff`, `dvc exp show`).

It is derived from the evaluation record evaluate has just written, never computed on its own, so
the two cannot disagree. The record itself (reports/evaluation.json, nested and long) stays the
detail for people and tools; DVC's tables get only these few columns. The file is committed to git
(dvc.yaml: ``cache: false``, and .gitignore lets it through) because a metric that no commit or
experiment holds is what made `dvc exp show` print ``!``.
"""

from __future__ import annotations

from pathlib import Path

from tasks.io import write_json
from tasks.paths import METRICS

# The record's flat numbers, under the same names. Strings (the chosen method, the verdict label,
# the baseline's name) are params-like facts, not metrics: DVC cannot diff them, so they stay in
# the record (and the chosen method follows from params.yaml, which `dvc exp show` lists).
# The zero-shot road's (tasks/evaluate.py copies them from the chosen model's zero-shot scores): the
# chosen model on the unseen classes, and GZSL.
ZERO_SHOT_NUMBERS = ("unseen_accuracy", "gzsl_seen_accuracy", "gzsl_unseen_accuracy", "harmonic_mean")
NUMBERS = ("adapted_accuracy", "source_only_accuracy", "baseline_accuracy", "transfer_gain", *ZERO_SHOT_NUMBERS)


def headline_metrics(evaluation: dict) -> dict[str, float | bool]:
    """The flat numbers of ``evaluation`` (the record evaluate writes). A number the record does not
    have (no source-only baseline on the source-free road) is left out rather than written as null:
    DVC shows a missing key as ``-`` and diffs nulls badly."""
    metrics: dict[str, float | bool] = {}
    for key in NUMBERS:
        if evaluation.get(key) is not None:
            metrics[key] = float(evaluation[key])
    ci = evaluation.get("transfer_gain_ci")
    if ci is not None:
        metrics["transfer_gain_ci_low"], metrics["transfer_gain_ci_high"] = (float(ci[0]), float(ci[1]))
    if evaluation.get("negative_transfer") is not None:
        metrics["negative_transfer"] = bool(evaluation["negative_transfer"])
    return metrics


def write_headline(root: Path, evaluation: dict) -> dict[str, float | bool]:
    """Write reports/metrics.json (atomically, as every output) from the evaluation record."""
    metrics = headline_metrics(evaluation)
    write_json(Path(root) / METRICS, metrics)
    return metrics
