"""Comparing models on one test set: transfer gain with a paired bootstrap CI, and the verdict.

Paired bootstrap (Efron & Tibshirani 1993; Koehn 2004 for classifiers). Both models are scored
on the same N test samples, so the per-sample difference of correctness

    dᵢ = 1[aᵢ = yᵢ] − 1[bᵢ = yᵢ]          (averaged over seeds when several runs are given)

carries the pairing. The gain is Δ = mean(d). Resampling the N indices with replacement B times
gives Δ*₁..Δ*_B; the (1 − α) CI is the percentile interval [q_{α/2}, q_{1−α/2}] of the Δ*.
Resampling test samples (not seeds) measures how much the conclusion depends on which test
samples were drawn, which is the uncertainty a person shipping the model cares about.

Verdict: **negative transfer** when the CI's upper bound is below zero (the chosen model is
significantly worse than the best baseline); **positive transfer** when the lower bound is above
zero; otherwise **no significant difference**.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from transferlab.errors import DataError


@dataclass(frozen=True)
class BootstrapResult:
    estimate: float
    ci_low: float
    ci_high: float
    confidence: float
    n_boot: int
    seed: int
    n: int

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = [self.ci_low, self.ci_high]
        return d


def _correctness(y_true: np.ndarray, preds: object, what: str) -> np.ndarray:
    """Per-sample accuracy averaged over seeds: preds is (N,) or (S, N)."""
    p = np.asarray(preds)
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] != y_true.size:
        raise DataError(
            f"{what} must have shape (N,) or (seeds, N) with N = {y_true.size}, got {np.shape(preds)}"
        )
    return (p == y_true[None, :]).mean(axis=0)


def paired_bootstrap_difference(
    y_true: object,
    pred_a: object,
    pred_b: object,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Accuracy of ``a`` minus accuracy of ``b`` with a paired percentile bootstrap CI."""
    y = np.asarray(y_true).astype(np.int64)
    if y.ndim != 1 or y.size == 0:
        raise DataError("the bootstrap needs a non-empty 1-D array of test labels")
    if not 0.0 < confidence < 1.0:
        raise DataError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 1:
        raise DataError(f"n_boot must be at least 1, got {n_boot}")
    d = _correctness(y, pred_a, "pred_a") - _correctness(y, pred_b, "pred_b")
    rng = np.random.default_rng(seed)
    n = y.size
    # Chunked so memory stays bounded (B × N indices) for large test sets.
    stats = np.empty(n_boot)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        stats[start:stop] = d[idx].mean(axis=1)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return BootstrapResult(float(d.mean()), float(lo), float(hi), confidence, n_boot, seed, int(n))


@dataclass(frozen=True)
class TransferVerdict:
    label: str  # "negative-transfer" | "positive-transfer" | "no-significant-difference"
    negative_transfer: bool
    sentence: str

    def to_dict(self) -> dict:
        return asdict(self)


def negative_transfer_verdict(
    gain: BootstrapResult, chosen: str = "the chosen model", baseline: str = "the best baseline"
) -> TransferVerdict:
    pct = f"{100 * gain.estimate:+.1f} points"
    ci = f"{100 * gain.ci_low:+.1f} to {100 * gain.ci_high:+.1f}"
    level = f"{100 * gain.confidence:.0f}%"
    if gain.ci_high < 0:
        return TransferVerdict(
            "negative-transfer",
            True,
            f"Negative transfer: {chosen} is significantly worse than {baseline} "
            f"({pct}, {level} CI {ci}); do not ship it.",
        )
    if gain.ci_low > 0:
        return TransferVerdict(
            "positive-transfer",
            False,
            f"Positive transfer: {chosen} beats {baseline} by {pct} ({level} CI {ci}).",
        )
    return TransferVerdict(
        "no-significant-difference",
        False,
        f"No significant difference between {chosen} and {baseline} ({pct}, {level} CI {ci}).",
    )


def summarise_runs(values: list[float] | np.ndarray) -> dict:
    """Mean and sample standard deviation (ddof=1; 0 for a single run) of per-seed numbers."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise DataError("cannot summarise zero runs")
    std = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return {"mean": float(v.mean()), "std": std, "per_seed": [float(x) for x in v], "n": int(v.size)}


def transfer_gain(
    y_true: object,
    chosen_preds: object,
    baseline_preds: dict[str, object],
    *,
    chosen: str = "chosen",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Gain of the chosen model over the best baseline (by mean test accuracy), with its verdict.

    ``chosen_preds`` and each baseline's predictions are (N,) or (seeds, N) class indices.
    Returns ``{"baseline", "baseline_accuracies", **BootstrapResult.to_dict(), "verdict": {...}}``.
    """
    if not baseline_preds:
        raise DataError("transfer gain needs at least one baseline's predictions")
    y = np.asarray(y_true).astype(np.int64)
    accs = {name: float(_correctness(y, p, name).mean()) for name, p in baseline_preds.items()}
    # Ties go to the first baseline given, so the choice is deterministic.
    best = max(accs, key=lambda k: (accs[k], -list(accs).index(k)))
    result = paired_bootstrap_difference(
        y, chosen_preds, baseline_preds[best], n_boot=n_boot, confidence=confidence, seed=seed
    )
    verdict = negative_transfer_verdict(result, chosen, best)
    return {"baseline": best, "baseline_accuracies": accs, **result.to_dict(), "verdict": verdict.to_dict()}


def selection_regret(candidate_accuracies: dict[str, float], chosen: str) -> dict:
    """Oracle audit: best candidate's test accuracy minus the chosen one's (no decision may use it)."""
    if chosen not in candidate_accuracies:
        raise DataError(f"the chosen method '{chosen}' is not among the audited candidates")
    best = max(candidate_accuracies, key=lambda k: candidate_accuracies[k])
    return {
        "oracle": True,
        "note": "uses target test labels; an audit only, no decision used it",
        "chosen": chosen,
        "chosen_accuracy": float(candidate_accuracies[chosen]),
        "best_candidate": best,
        "best_accuracy": float(candidate_accuracies[best]),
        "regret": float(candidate_accuracies[best] - candidate_accuracies[chosen]),
        "candidates": {k: float(v) for k, v in candidate_accuracies.items()},
    }
