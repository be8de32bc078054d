"""Classification metrics on a held-out test set, computed from labels, predictions and probabilities.

Every function takes plain arrays (numpy, or anything ``np.asarray`` accepts, e.g. CPU tensors):
``y_true`` and ``y_pred`` are integer class indices of shape (N,), ``probs`` is (N, C) with rows
that sum to one.

- accuracy = (1/N) Σ 1[ŷᵢ = yᵢ]
- per-class accuracy (recall) of class c = |{i: yᵢ = c, ŷᵢ = c}| / |{i: yᵢ = c}|  (NaN when c is absent)
- macro-F1 = mean over classes c of F1_c = 2·P_c·R_c / (P_c + R_c), over the classes that occur in
  ``y_true`` or ``y_pred`` (a class with P_c + R_c = 0 counts as F1 = 0), as scikit-learn does
- expected calibration error (Guo et al. 2017) with B equal-width confidence bins
  ECE = Σ_b |B_b|/N · |acc(B_b) − conf(B_b)|, confidence = max_c p_ic, bin b = (b/B, (b+1)/B]
  (confidence 0 falls into the first bin)
- confusion matrix M[t, p] = number of samples of true class t predicted as p
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transferlab.errors import DataError


def _labels(y: object, what: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise DataError(f"{what} must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise DataError(f"{what} must hold integer class indices")
        arr = arr.astype(np.int64)
    return arr.astype(np.int64, copy=False)


def _pair(y_true: object, y_pred: object) -> tuple[np.ndarray, np.ndarray]:
    t = _labels(y_true, "y_true")
    p = _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise DataError(f"y_true has {t.size} labels but y_pred has {p.size} predictions")
    if t.size == 0:
        raise DataError("cannot compute a metric on an empty test set")
    return t, p


def _probs(probs: object, n: int) -> np.ndarray:
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise DataError(f"probs must have shape (N, C) with N = {n}, got {arr.shape}")
    return arr


def _n_classes(n_classes: int | None, *arrays: np.ndarray) -> int:
    seen = max(int(a.max()) + 1 if a.size else 0 for a in arrays)
    if n_classes is None:
        return seen
    if seen > n_classes:
        raise DataError(f"a class index {seen - 1} is out of range for {n_classes} classes")
    return n_classes


def accuracy(y_true: object, y_pred: object) -> float:
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p))


def confusion_matrix(y_true: object, y_pred: object, n_classes: int | None = None) -> np.ndarray:
    """(C, C) int64 counts, rows = true class, columns = predicted class."""
    t, p = _pair(y_true, y_pred)
    c = _n_classes(n_classes, t, p)
    return np.bincount(t * c + p, minlength=c * c).reshape(c, c).astype(np.int64)


def per_class_accuracy(y_true: object, y_pred: object, n_classes: int | None = None) -> np.ndarray:
    """Recall of each class, (C,) float; NaN for a class with no test samples."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def macro_f1(y_true: object, y_pred: object, n_classes: int | None = None) -> float:
    cm = confusion_matrix(y_true, y_pred, n_classes).astype(np.float64)
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    actual = cm.sum(axis=1)
    present = (predicted + actual) > 0
    # F1 = 2TP / (2TP + FP + FN) = 2TP / (predicted + actual): no 0/0 for present classes.
    f1 = 2 * tp[present] / (predicted[present] + actual[present])
    return float(f1.mean())


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin counts, mean confidence and accuracy for a reliability diagram (empty bins: NaN)."""

    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def ece(self) -> float:
        n = self.counts.sum()
        used = self.counts > 0
        gaps = np.abs(self.accuracy[used] - self.confidence[used])
        return float(np.sum(self.counts[used] / n * gaps))


def reliability_bins(probs: object, y_true: object, n_bins: int = 15) -> ReliabilityBins:
    t = _labels(y_true, "y_true")
    if t.size == 0:
        raise DataError("cannot compute calibration on an empty test set")
    p = _probs(probs, t.size)
    if n_bins < 1:
        raise DataError(f"n_bins must be at least 1, got {n_bins}")
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == t).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Right-closed bins (lo, hi]; ceil maps conf in (b/B, (b+1)/B] to b+1, so subtract one.
    which = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    sum_conf = np.bincount(which, weights=conf, minlength=n_bins)
    sum_acc = np.bincount(which, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(counts > 0, sum_conf / np.maximum(counts, 1), np.nan)
        mean_acc = np.where(counts > 0, sum_acc / np.maximum(counts, 1), np.nan)
    return ReliabilityBins(edges, counts.astype(np.int64), mean_conf, mean_acc)


def expected_calibration_error(probs: object, y_true: object, n_bins: int = 15) -> float:
    return reliability_bins(probs, y_true, n_bins).ece


def classification_metrics(
    y_true: object, probs: object, classes: tuple[str, ...] | list[str], n_bins: int = 15
) -> dict:
    """All single-model metrics as a JSON-able dict (predictions are the argmax of ``probs``)."""
    t = _labels(y_true, "y_true")
    p = _probs(probs, t.size)
    n_classes = len(classes)
    if p.shape[1] != n_classes:
        raise DataError(f"probs have {p.shape[1]} columns but there are {n_classes} classes")
    pred = p.argmax(axis=1)
    per_class = per_class_accuracy(t, pred, n_classes)
    return {
        "n": int(t.size),
        "accuracy": accuracy(t, pred),
        "macro_f1": macro_f1(t, pred, n_classes),
        "ece": expected_calibration_error(p, t, n_bins),
        "per_class_accuracy": {
            str(c): (None if np.isnan(a) else float(a)) for c, a in zip(classes, per_class)
        },
        "confusion_matrix": confusion_matrix(t, pred, n_classes).tolist(),
    }
