r"""SFDA: Self-challenging Fisher Discriminant Analysis (Shao et al., "Not All Models Are Equal:
Predicting Model Transferability in a Self-challenging Fisher Space", ECCV 2022).

How well a model's features of the labelled target samples would serve a classifier once the
features are pushed to be discriminative, scored on deliberately confused samples. With features
x_i ∈ R^d, labels y_i ∈ {1..C}, priors π_c, class means μ_c:

1. Regularised Fisher space. Within-class scatter S_W = Σ_c π_c Σ_c (Σ_c the biased covariance of
   class c), shrunk towards a scaled identity with an adaptive strength::

       λ = max(exp(−a · σ_max(S_W)), 1e-10),      S̃_W = (1 − λ) S_W + λ (tr S_W / d) I

   (σ_max the largest eigenvalue; a = 5 as in the authors' code; the paper's eq. 4). The Fisher
   projection U solves S_B u = ν S̃_W u, S_B = S_T − S̃_W, with Uᵀ S̃_W U = I.
2. Bayes classifier in that space (equal unit covariances after projection)::

       δ_c(x) = xᵀ U Uᵀ μ_c − ½ μ_cᵀ U Uᵀ μ_c + log π_c,     p(c | x) = softmax_c δ_c(x)

   With every generalised eigenvector kept (as the authors' implementation does), U Uᵀ = S̃_W⁻¹,
   so δ_c is computed here by a linear solve, without the eigenproblem.
3. Self-challenging ConfMix: each sample is mixed towards the mean of the *other* classes' means
   in proportion to how unsure the first classifier is of its true class::

       q_i = softmax(p(· | x_i))_{y_i},    x̃_i = q_i x_i + (1 − q_i) μ̄_{−y_i},
       μ̄_{−c} = 1/(C − 1) Σ_{c' ≠ c} μ_{c'}

   (the extra softmax is the authors' "softening" of p before mixing).
4. Refit steps 1–2 on x̃ with the same λ; the score is the mean probability of the true class::

       SFDA = 1/n Σ_i p̃(y_i | x̃_i)          (in [0, 1]; higher transfers better)

Deviation from the authors' code: σ_max is the exact largest eigenvalue (they take three power
iterations), so λ is the paper's formula exactly.
"""

from __future__ import annotations

import numpy as np

from transferlab.errors import DataError


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _within_scatter(x: np.ndarray, y: np.ndarray, priors: np.ndarray) -> np.ndarray:
    d = x.shape[1]
    s_w = np.zeros((d, d))
    for c, prior in enumerate(priors):
        xc = x[y == c] - x[y == c].mean(axis=0)
        s_w += prior * (xc.T @ xc) / len(xc)
    return s_w


def _shrinkage(s_w: np.ndarray, a: float) -> float:
    return max(float(np.exp(-a * np.linalg.eigvalsh(s_w)[-1])), 1e-10)


def _fisher_posteriors(x: np.ndarray, y: np.ndarray, n_classes: int, *, lam: float | None = None,
                       a: float = 5.0) -> tuple[np.ndarray, float, np.ndarray]:
    """p(c | x_i) of the Bayes classifier in the regularised Fisher space (steps 1–2), the shrinkage λ
    (computed from ``a`` unless given) and the class means."""
    priors = np.bincount(y, minlength=n_classes) / len(y)
    means = np.stack([x[y == c].mean(axis=0) for c in range(n_classes)])
    s_w = _within_scatter(x, y, priors)
    if lam is None:
        lam = _shrinkage(s_w, a)
    d = s_w.shape[0]
    shrunk = (1.0 - lam) * s_w + lam * (np.trace(s_w) / d) * np.eye(d)
    coef = np.linalg.solve(shrunk, means.T).T  # rows: S̃_W⁻¹ μ_c
    scores = x @ coef.T - 0.5 * np.einsum("cd,cd->c", means, coef) + np.log(priors)
    return _softmax(scores), lam, means


def sfda(features, y, *, a: float = 5.0) -> float:
    """SFDA score of ``features`` (n × d) for labels ``y`` (n,); see the module docstring."""
    x = np.array(features, dtype=np.float64).reshape(len(features), -1)
    labels = np.asarray(y)
    if labels.ndim != 1 or len(labels) != len(x):
        raise DataError(f"need one target label per sample ({len(x)}), got shape {labels.shape}")
    classes, yi = np.unique(labels, return_inverse=True)
    n_classes = len(classes)
    if n_classes < 2:
        raise DataError("SFDA needs labelled samples of at least 2 classes")
    p, lam, means = _fisher_posteriors(x, yi, n_classes, a=a)
    q = _softmax(p)[np.arange(len(x)), yi][:, None]
    others = (means.sum(axis=0) - means) / (n_classes - 1)
    mixed = q * x + (1.0 - q) * others[yi]
    p_mixed, _, _ = _fisher_posteriors(mixed, yi, n_classes, lam=lam)
    return float(p_mixed[np.arange(len(x)), yi].mean())
