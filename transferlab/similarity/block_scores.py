"""Which layers to transfer: transferability of every block's features for the target's labels.

The seeds' layer-transfer question (Yosinski et al. 2014), answered on the target's labelled
samples without training anything: for each block b the features f_b(x) are scored by LogME
(You et al. 2021; the evidence of a Bayesian linear model, per sample) and the H-score (Bao et
al. 2019). A block scores high when a linear classifier on its features would fit the target's
labels well, which is what freezing the blocks up to b and training the rest on top needs.

Feature maps (N, C, H, W) are average-pooled to a g × g grid with C·g² ≤ ``max_dim`` before
scoring: the evidence of a few hundred samples in tens of thousands of raw dimensions measures
the dimension more than the features, and pooling keeps the coarse layout digits need. The raw
input, pooled alike, is the reference: a network whose best block does not beat its own pixels
carries nothing the target can use (transfer predicted to hurt).

The H-score's covariance has rank < n, so it is computed on the top min(d, n/2) principal
components (a plain pseudo-inverse on n ≪ d would rank the widest block first).

Suggested depth: with blocks b₁..b_B and LogME values ℓ₁..ℓ_B, j = argmax ℓ; transfer (freeze)
the first k = j blocks and retrain the rest with a new head; k = B is the linear probe.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from transferlab.similarity.transferability import h_score, logme

NOT_BLOCKS = ("input", "logits")


def pooled(activation: np.ndarray, max_dim: int = 1024) -> np.ndarray:
    """(N, D) features: feature maps average-pooled to the largest g × g grid with C·g² ≤ max_dim."""
    a = np.asarray(activation, dtype=np.float32)
    if a.ndim == 2:
        return a
    if a.ndim != 4:
        return a.reshape(len(a), -1)
    c, h = a.shape[1], a.shape[2]
    g = max(1, min(h, int(math.isqrt(max(1, max_dim // c)))))
    if g == h and a.shape[3] == h:
        return a.reshape(len(a), -1)
    return F.adaptive_avg_pool2d(torch.from_numpy(a), g).reshape(len(a), -1).numpy()


def pca_h_score(features: np.ndarray, y: np.ndarray) -> float:
    """H-score on the top min(d, n/2) principal components (see the module doc)."""
    f = np.asarray(features, dtype=np.float64)
    f = f - f.mean(axis=0)
    r = max(1, min(f.shape[1], len(f) // 2))
    if r < f.shape[1]:
        _, _, vt = np.linalg.svd(f, full_matrices=False)
        f = f @ vt[:r].T
    return h_score(f, y)


def block_transferability(activations: dict[str, np.ndarray], y: np.ndarray, max_dim: int = 1024) -> list[dict]:
    """One entry per activation (input, every block; not the logits): LogME, H-score, scored width."""
    profile = []
    for name, act in activations.items():
        if name == "logits":
            continue
        f = pooled(act, max_dim)
        profile.append({"layer": name, "logme": logme(f, y), "hscore": pca_h_score(f, y), "dim": int(f.shape[1])})
    return profile


def suggested_depth(profile: list[dict]) -> dict | None:
    """The depth the LogME profile suggests (module doc), and whether no block beats the pixels."""
    blocks = [p for p in profile if p["layer"] not in NOT_BLOCKS]
    if not blocks:
        return None
    j = max(range(len(blocks)), key=lambda i: blocks[i]["logme"])
    peak = blocks[j]
    pixels = next((p["logme"] for p in profile if p["layer"] == "input"), None)
    hurt = pixels is not None and peak["logme"] <= pixels
    k = j + 1
    reason = f"LogME peaks at block {k} of {len(blocks)} ({peak['layer']}, {peak['logme']:.3f})"
    if pixels is not None:
        reason += f"; the raw input scores {pixels:.3f}"
    reason += ": " + ("no block carries more of the target's signal than its pixels" if hurt else
                      "linear probe (every block transfers)" if k == len(blocks) else f"layer transfer k = {k}")
    return {"k": k, "n_blocks": len(blocks), "block": peak["layer"], "logme": peak["logme"], "input_logme": pixels,
            "hurt": hurt, "blocks": [p["layer"] for p in blocks], "reason": reason}
