"""Other domain distances: proxy A-distance and CORAL."""

from __future__ import annotations

import numpy as np

from transferlab.errors import DataError


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise DataError(f"both feature sets must be 2-D with the same width, got {x.shape} and {y.shape}")
    if len(x) < 2 or len(y) < 2:
        raise DataError("each feature set needs at least 2 samples")
    return x, y


def proxy_a_distance(x, y, *, seed: int = 0, holdout: float = 0.5) -> float:
    """Proxy A-distance (Ben-David et al., 2007): ``2 (1 - 2 ε)`` where ε is the held-out error of a
    linear domain classifier (logistic regression on standardised features, balanced domains).
    0: indistinguishable domains; 2: perfectly separable. Clipped to [0, 2]."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = _pair(x, y)
    rng = np.random.default_rng(seed)
    n = min(len(x), len(y))
    x, y = x[rng.permutation(len(x))[:n]], y[rng.permutation(len(y))[:n]]
    data = np.vstack([x, y])
    labels = np.r_[np.zeros(n), np.ones(n)]
    tr_x, te_x, tr_y, te_y = train_test_split(data, labels, test_size=holdout, random_state=seed, stratify=labels)
    scaler = StandardScaler().fit(tr_x)
    clf = LogisticRegression(C=1.0, max_iter=500, random_state=seed)
    clf.fit(scaler.transform(tr_x), tr_y)
    error = 1.0 - clf.score(scaler.transform(te_x), te_y)
    return float(np.clip(2.0 * (1.0 - 2.0 * error), 0.0, 2.0))


def coral_distance(x, y) -> float:
    """CORAL distance (Sun & Saenko, 2016): ``‖C_x − C_y‖²_F / (4 d²)`` between feature covariances."""
    x, y = _pair(x, y)
    d = x.shape[1]
    cx, cy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    return float(((np.atleast_2d(cx) - np.atleast_2d(cy)) ** 2).sum() / (4.0 * d * d))
