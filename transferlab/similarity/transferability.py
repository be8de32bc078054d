"""Transferability of a source model to a labelled target, without training on it.

* LEEP (Nguyen et al., 2020): with source-label probabilities θ(x) ∈ Δ^Z on target samples,
  the empirical joint P(y, z) = 1/n Σ_i θ_z(x_i) 1[y_i = y], conditional P(y|z) = P(y,z)/P(z);
  LEEP = 1/n Σ_i log Σ_z P(y_i|z) θ_z(x_i). Higher is better (≤ 0).
* NCE (Tran et al., 2019): −H(Y | Z) with Z the source model's hard predictions. Higher is better.
* H-score (Bao et al., 2019): tr(cov(f)^-1 cov(E[f | y])) on features f. Higher is better.
* LogME (You et al., 2021): the log marginal evidence of a Bayesian linear model per class
  (one-hot targets) on features, maximised over α, β by fixed-point iteration, per sample,
  averaged over classes. Higher is better.
"""

from __future__ import annotations

import numpy as np

from transferlab.errors import DataError


def _labels(y, n: int) -> np.ndarray:
    y = np.asarray(y).astype(np.int64)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"need one target label per sample ({n}), got shape {y.shape}")
    return y


def leep(source_probs, y) -> float:
    theta = np.asarray(source_probs, dtype=np.float64)
    y = _labels(y, len(theta))
    n_y = int(y.max()) + 1
    joint = np.zeros((n_y, theta.shape[1]))
    np.add.at(joint, y, theta)
    joint /= len(theta)
    conditional = joint / np.maximum(joint.sum(axis=0, keepdims=True), 1e-300)
    eep = (theta * conditional[y]).sum(axis=1)
    return float(np.mean(np.log(np.maximum(eep, 1e-300))))


def nce(source_pred, y) -> float:
    z = np.asarray(source_pred).astype(np.int64)
    y = _labels(y, len(z))
    joint = np.zeros((int(y.max()) + 1, int(z.max()) + 1))
    np.add.at(joint, (y, z), 1.0)
    joint /= len(z)
    pz = joint.sum(axis=0)
    mask = joint > 0
    cond = joint / np.maximum(pz[None, :], 1e-300)
    return float((joint[mask] * np.log(cond[mask])).sum())


def h_score(features, y, ridge: float = 1e-6) -> float:
    f = np.asarray(features, dtype=np.float64)
    y = _labels(y, len(f))
    f = f - f.mean(axis=0)
    cov_f = f.T @ f / len(f) + ridge * np.eye(f.shape[1])
    g = np.zeros_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(axis=0)
    cov_g = g.T @ g / len(f)
    return float(np.trace(np.linalg.pinv(cov_f, hermitian=True) @ cov_g))


def logme(features, y, max_iter: int = 100, tol: float = 1e-5) -> float:
    f = np.asarray(features, dtype=np.float64)
    y = _labels(y, len(f))
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s ** 2
    evidences = []
    for c in np.unique(y):
        t = (y == c).astype(np.float64)
        proj = u.T @ t
        proj2 = proj ** 2
        residual_outside = max(float(t @ t - proj2.sum()), 0.0)
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            gamma = float((beta * sigma / (alpha + beta * sigma)).sum())
            m2 = float((beta ** 2 * sigma * proj2 / (alpha + beta * sigma) ** 2).sum())
            res = float((alpha ** 2 * proj2 / (alpha + beta * sigma) ** 2).sum()) + residual_outside
            new_alpha = gamma / max(m2, 1e-12)
            new_beta = (n - gamma) / max(res, 1e-12)
            done = abs(new_alpha - alpha) / alpha < tol and abs(new_beta - beta) / beta < tol
            alpha, beta = new_alpha, new_beta
            if done:
                break
        m2 = float((beta ** 2 * sigma * proj2 / (alpha + beta * sigma) ** 2).sum())
        res = float((alpha ** 2 * proj2 / (alpha + beta * sigma) ** 2).sum()) + residual_outside
        logdet = float(np.log(alpha + beta * sigma).sum()) + (d - len(sigma)) * np.log(alpha)
        evidence = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - alpha / 2 * m2 - beta / 2 * res
                    - logdet / 2 - n / 2 * np.log(2 * np.pi))
        evidences.append(evidence / n)
    return float(np.mean(evidences))
