"""The one promotion rule: when a registered version takes the ``champion`` alias, and why.

    A version becomes champion only when its verdict on the promotion hold-out is a significant
    gain over the best baseline (``positive-transfer``) *and* it beats the current champion on
    that same hold-out. A champion that predicts other classes (another task) is no rival; a tie
    is not a win; with model registration off there is no version to promote.

Judging many versions on one test split over time is itself selection: the more versions compete
on it, the more the winner's score flatters it. So the target test split is cut once, per class
and deterministically, into a **promotion part** (``promotion_share`` of it), read only for this
contest, and a **report part** on which accuracy, gain, CI and verdict are reported.

Everything here is pure: the caller looks the champion up in the registry (and re-scores it when
needed) and applies the decision to the alias and the tags. Every interface (alias, report page,
terminal summary, Prefect artifact, MLflow tags) shows the same :class:`Promotion`.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from transferlab.errors import DataError

POSITIVE = "positive-transfer"
RULE = ("A version becomes champion only when its verdict on the promotion hold-out is a significant gain "
        "over the best baseline and it beats the current champion on that same hold-out.")
# Accuracies pass through text tags: a tie (the same model on the same split) must not pass for a win by rounding.
TIE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Rival:
    """The current champion as seen on this promotion part."""

    version: str
    accuracy: float | None  # None: it could not be scored here
    other_classes: bool = False  # registered for another task: no rival
    how: str = "scored on this promotion hold-out"


@dataclass(frozen=True)
class Promotion:
    moved: bool
    version: str | None  # the champion after the decision (None: there is none)
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def promotion_decision(version: str | int | None, verdict: str, accuracy: float, rival: Rival | None,
                       *, baseline: str = "the best baseline") -> Promotion:
    """Whether ``version`` (None: registration is off), whose promotion-part ``verdict`` against
    ``baseline`` and own ``accuracy`` are given, takes the alias from ``rival`` (None: no champion)."""
    kept = rival.version if rival is not None else None
    if version is None:
        return Promotion(False, kept, "model registration is off (mlflow.register_models: false), so no version "
                                      "can be promoted")
    version = str(version)
    if verdict != POSITIVE:
        return Promotion(False, kept, f"its verdict on the promotion hold-out is {verdict}, not a significant gain "
                                      f"over {baseline}")
    gain = f"a significant gain over {baseline} on the promotion hold-out"
    if rival is None:
        return Promotion(True, version, f"{gain}, and there was no champion yet")
    if rival.version == version:
        return Promotion(False, version, f"{gain}; it is the champion already")
    if rival.other_classes:
        return Promotion(True, version, f"{gain}; the previous champion v{rival.version} predicts other classes "
                                        "(another task), so it is no rival here")
    if rival.accuracy is None:
        return Promotion(False, kept, f"{gain}, but the current champion v{rival.version} could not be scored on "
                                      "the promotion hold-out, so it stays")
    versus = f"{100 * accuracy:.2f} % vs {100 * rival.accuracy:.2f} %, {rival.how}"
    if accuracy <= rival.accuracy + TIE_TOLERANCE:
        return Promotion(False, kept, f"{gain}, but the current champion v{rival.version} is as good or better "
                                      f"({versus})")
    return Promotion(True, version, f"{gain}, and it beats the champion v{rival.version} ({versus})")


@dataclass(frozen=True)
class PromotionSplit:
    promotion: np.ndarray  # sorted indices into the test split
    report: np.ndarray
    share: float
    sha256: str  # names this exact cut of this exact test split (tags compare it)

    def to_dict(self) -> dict:
        return {"share": self.share, "promotion_n": int(self.promotion.size), "report_n": int(self.report.size),
                "sha256": self.sha256}


def promotion_split(y: np.ndarray, share: float, test_sha256: str) -> PromotionSplit:
    """Cut the test split, per class, into a promotion part (``share`` of each class, rounded) and a
    report part. Seeded by the test split's own hash, not by params.seed: the same test split always
    gives the same cut, so a champion's recorded promotion score stays comparable across runs."""
    y = np.asarray(y)
    if not 0.0 < share < 1.0:
        raise DataError(f"evaluate.promotion_share must be between 0 and 1, got {share}")
    if y.size < 2:
        raise DataError(f"the target test split has {y.size} sample(s): too few to hold a part out for promotion")
    rng = np.random.default_rng(int(test_sha256[:16], 16))
    chosen = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        chosen.append(members[:int(round(share * members.size))])
    promotion = np.sort(np.concatenate(chosen))
    if promotion.size in (0, y.size):  # tiny classes all rounded one way: cut the whole split instead
        k = min(max(1, int(round(share * y.size))), y.size - 1)
        promotion = np.sort(rng.permutation(y.size)[:k])
    report = np.setdiff1d(np.arange(y.size), promotion)
    digest = hashlib.sha256(f"{test_sha256}:{share}:".encode() + promotion.astype(np.int64).tobytes()).hexdigest()
    return PromotionSplit(promotion, report, float(share), digest)
