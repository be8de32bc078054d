"""How a trial is scored without target test labels.

The score of a trained trial model comes from, in order of preference:

1. **Target labelled data, held out** (at least ``holdout_min_per_class`` labels per class):
   one stratified fold (1/``cv_folds`` of the labelled set) is kept out of every trial's
   training and every trial is scored on it.
2. **Target labelled data, cross-validated** (2 ≤ labels per class < ``holdout_min_per_class``):
   K = min(``cv_folds``, smallest class count) stratified folds. A method that needs target
   labels is trained K times, each time without one fold, and scored on the pooled K held-out
   predictions, so every labelled sample is predicted by a model that never saw it. A method
   that needs no labels is trained once without any labelled target and scored on all
   labelled samples: the same samples, the same kind of number.
3. **Label-free validators** (no labels, or one per class): IM, SND and DEV
   (:mod:`transferlab.validators`) on the unlabelled target pool; ``validator`` says which one
   ranks, or ``mean-rank`` for the mean of the three ranks within a round.

On labelled samples the number that ranks is ``labelled_score``: the held-out negative
log-likelihood (default) or accuracy. Both are always recorded; the other breaks ties.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold

from transferlab.data.types import Domain
from transferlab.selection.config import SelectionConfig


@dataclass(frozen=True)
class ScoringPlan:
    kind: str  # "holdout" | "cv" | "validators"
    folds: tuple[tuple[np.ndarray, np.ndarray], ...]  # (train index, held-out index) into target_labelled
    description: str

    @property
    def uses_labels(self) -> bool:
        return self.kind != "validators"


def plan_scoring(target_labelled: Domain | None, config: SelectionConfig) -> ScoringPlan:
    validator_text = (
        "label-free validators: mean rank of IM, SND and DEV"
        if config.validator == "mean-rank"
        else f"label-free validator {config.validator.upper()}"
    )
    if target_labelled is None or len(target_labelled) == 0:
        return ScoringPlan("validators", (), f"{validator_text} (the target has no labels)")
    counts = target_labelled.class_counts()
    smallest = int(counts[counts > 0].min()) if np.any(counts > 0) else 0
    if smallest < 2:
        return ScoringPlan(
            "validators", (), f"{validator_text} (one label per class is too few to hold any out)"
        )
    y = target_labelled.y
    if smallest >= config.holdout_min_per_class:
        skf = StratifiedKFold(n_splits=config.cv_folds, shuffle=True, random_state=config.seed)
        train, held = next(iter(skf.split(np.zeros(len(y)), y)))
        return ScoringPlan(
            "holdout",
            ((train, held),),
            f"target-labelled {_score_name(config)} on a held-out stratified fold of {len(held)} samples",
        )
    k = min(config.cv_folds, smallest)
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=config.seed)
    folds = tuple((tr, te) for tr, te in skf.split(np.zeros(len(y)), y))
    return ScoringPlan("cv", folds, f"target-labelled {_score_name(config)}, {k}-fold cross-validated")


def _score_name(config: SelectionConfig) -> str:
    return "negative log-likelihood" if config.labelled_score == "nll" else "accuracy"


def mean_rank_scores(rows: list[dict[str, float]], keys: tuple[str, ...] = ("im", "snd", "dev")) -> list[float]:
    """Mean over ``keys`` of each row's rank (0 = worst .. n−1 = best, ties share the mean rank),
    divided by n − 1 so the result is in [0, 1]; higher is better."""
    n = len(rows)
    if n == 1:
        return [1.0]
    total = np.zeros(n)
    for key in keys:
        vals = np.array([r[key] for r in rows], dtype=np.float64)
        order = np.argsort(vals, kind="stable")
        ranks = np.empty(n)
        ranks[order] = np.arange(n)
        for v in np.unique(vals):  # ties share their mean rank, so order of listing cannot matter
            same = vals == v
            ranks[same] = ranks[same].mean()
        total += ranks
    return list(total / len(keys) / (n - 1))
