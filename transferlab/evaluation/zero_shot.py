"""Zero-shot scores: accuracy on the unseen classes, and the generalised zero-shot harmonic mean.

Following the protocol of Xian et al. (2018, "Zero-shot learning — a comprehensive evaluation"),
accuracies are *per-class mean* (the mean over classes of each class's accuracy), so that a
frequent class does not hide a failing one:

- ``unseen`` (conventional zero-shot, ZSL): test samples of unseen classes, the prediction the
  argmax over the unseen classes only; chance is 1 / (number of unseen classes);
- ``gzsl_seen`` / ``gzsl_unseen`` (generalised zero-shot, GZSL): the prediction is the argmax over
  *every* target class, scored on the test samples of seen, resp. unseen classes;
- ``harmonic_mean`` H = 2 · S · U / (S + U) of those two (0 when both are 0).

Seen classes are the target's classes the source had; unseen, those it did not.
"""

from __future__ import annotations

import numpy as np


def per_class_accuracy(predicted: np.ndarray, y: np.ndarray, classes: np.ndarray) -> float:
    """Mean over ``classes`` present in ``y`` of the fraction of their samples predicted right."""
    accs = [float((predicted[y == c] == c).mean()) for c in classes if np.any(y == c)]
    return float(np.mean(accs)) if accs else float("nan")


def harmonic_mean(seen: float, unseen: float) -> float:
    return 0.0 if seen + unseen == 0 else 2 * seen * unseen / (seen + unseen)


def zero_shot_scores(scores: np.ndarray, y: np.ndarray, classes, seen) -> dict:
    """ZSL and (when the test holds seen classes) GZSL scores of ``scores`` (n, len(classes)) against
    labels ``y`` indexing ``classes``; ``seen`` names the classes the source had."""
    classes = [str(c) for c in classes]
    seen_set = {str(c) for c in seen}
    seen_idx = np.array([i for i, c in enumerate(classes) if c in seen_set], dtype=np.int64)
    unseen_idx = np.array([i for i, c in enumerate(classes) if c not in seen_set], dtype=np.int64)
    out: dict = {"seen_classes": [classes[i] for i in seen_idx], "unseen_classes": [classes[i] for i in unseen_idx],
                 "chance": 1.0 / len(unseen_idx) if len(unseen_idx) else None, "metric": "per-class mean accuracy"}
    is_unseen = np.isin(y, unseen_idx)
    if len(unseen_idx) and is_unseen.any():
        among = unseen_idx[scores[is_unseen][:, unseen_idx].argmax(1)]
        out["unseen"] = per_class_accuracy(among, y[is_unseen], unseen_idx)
    is_seen = np.isin(y, seen_idx)
    if len(seen_idx) and is_seen.any() and is_unseen.any():
        predicted = scores.argmax(1)
        s = per_class_accuracy(predicted[is_seen], y[is_seen], seen_idx)
        u = per_class_accuracy(predicted[is_unseen], y[is_unseen], unseen_idx)
        out.update(gzsl_seen=s, gzsl_unseen=u, harmonic_mean=harmonic_mean(s, u))
    return out
