"""One model's test metrics over several seeds, in the shape the evaluation report reads."""

from __future__ import annotations

import numpy as np

from transferlab.errors import DataError
from transferlab.evaluation.comparison import summarise_runs
from transferlab.evaluation.metrics import classification_metrics


def summarise_model(
    y_true: object,
    probs_per_seed: list[np.ndarray],
    classes: tuple[str, ...] | list[str],
    *,
    role: str,
    n_bins: int = 15,
) -> dict:
    """Metrics of one model trained with several seeds, all scored on the same test set.

    Returns ``{"role", "accuracy", "macro_f1", "ece"}`` each as ``{"mean","std","per_seed","n"}``,
    ``"per_class_accuracy"`` ({class: mean over seeds}), ``"confusion_matrix"`` (summed over seeds)
    and ``"predictions"`` ((seeds, N) int list, for :func:`transfer_gain`).
    """
    if not probs_per_seed:
        raise DataError(f"no predictions were given for the {role} model")
    per_seed = [classification_metrics(y_true, p, classes, n_bins) for p in probs_per_seed]
    per_class = {}
    for c in map(str, classes):
        vals = [m["per_class_accuracy"][c] for m in per_seed if m["per_class_accuracy"][c] is not None]
        per_class[c] = float(np.mean(vals)) if vals else None
    return {
        "role": role,
        "accuracy": summarise_runs([m["accuracy"] for m in per_seed]),
        "macro_f1": summarise_runs([m["macro_f1"] for m in per_seed]),
        "ece": summarise_runs([m["ece"] for m in per_seed]),
        "per_class_accuracy": per_class,
        "confusion_matrix": np.sum([m["confusion_matrix"] for m in per_seed], axis=0).tolist(),
        "predictions": [np.asarray(p).argmax(axis=1).tolist() for p in probs_per_seed],
    }
