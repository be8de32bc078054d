r"""Distances along a chain of domains (source, intermediates, target), comparable with each other.

The headline MMD test picks its kernel bandwidths from each pair's own pooled sample (the median
heuristic), so two of its MMD² values measured on different pairs are on different scales. A chain
needs one yardstick: here every pair is measured with the *same* multi-kernel family, the median
heuristic of the pooled source + target features (σ₀² = median ‖zᵢ − zⱼ‖²) times the default
multipliers 2⁻² … 2², and the unbiased estimator (Gretton et al. 2012, eq. 3;
:func:`transferlab.similarity.mmd.mmd2_statistic` with these kernels fixed)

    MMD²_u(X, Y) = 1/(n(n−1)) Σ_{i≠j} k(xᵢ,xⱼ) + 1/(m(m−1)) Σ_{i≠j} k(yᵢ,yⱼ) − 2/(nm) Σ_{i,j} k(xᵢ,yⱼ).

With one characteristic kernel, MMD = √MMD² is a metric between distributions, so the chain's
distances obey the triangle inequality d(S, T) ≤ d(S, I) + d(I, T) (up to estimation noise; MMD²_u
may dip below 0 for matching domains and is clipped there). The proxy A-distance (Ben-David et al.
2007, 2(1 − 2ε)) of every pair is reported beside it; it saturates at 2 for well-separated domains,
which is why the decision reads the MMD.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from transferlab.kernels import median_bandwidth
from transferlab.similarity.distances import proxy_a_distance
from transferlab.similarity.mmd import DEFAULT_MULTS, mmd2_statistic


def chain_distances(features: dict[str, np.ndarray], *, source: str = "source", target: str = "target",
                    seed: int = 0, a_distance: bool = True) -> dict:
    """Every pairwise distance between the named feature sets, on one kernel (module docstring).

    Returns ``{"mmd": {a: {b: d}}, "mmd2": {...}, "a_distance": {...} | None, "bandwidths": [...]}``
    with d = √max(MMD², 0); each matrix is symmetric with zeros on its diagonal."""
    names = list(features)
    reference = torch.as_tensor(np.concatenate([features[source], features[target]]), dtype=torch.float64)
    sigma0 = median_bandwidth(reference, seed)
    sigmas2 = [sigma0 * mult for mult in DEFAULT_MULTS]
    mmd2 = {a: {b: 0.0 for b in names} for a in names}
    pad = {a: {b: 0.0 for b in names} for a in names} if a_distance else None
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            mmd2[a][b] = mmd2[b][a] = mmd2_statistic(features[a], features[b], sigmas2=sigmas2)
            if pad is not None:
                pad[a][b] = pad[b][a] = proxy_a_distance(features[a], features[b], seed=seed)
    mmd = {a: {b: math.sqrt(max(v, 0.0)) for b, v in row.items()} for a, row in mmd2.items()}
    return {"mmd": mmd, "mmd2": mmd2, "a_distance": pad, "bandwidths": [math.sqrt(s) for s in sigmas2],
            "feature_sizes": {n: len(f) for n, f in features.items()}}


def _random_rows(x, n: int, seed: int) -> np.ndarray:
    """A seeded random subsample of rows (not stratified: an intermediate pool has no labels to stratify by)."""
    if len(x) <= n:
        return np.asarray(x)
    ids = np.sort(np.random.default_rng(seed).permutation(len(x))[:n])
    return np.asarray(x.subset(ids) if hasattr(x, "subset") else x[ids])


def chain_report(model, source_x, target_x, intermediates: dict[str, object], *, max_samples: int = 1000,
                 seed: int = 0) -> dict:
    """Distances between source, target and every intermediate pool in ``model``'s penultimate
    features (the space of the headline MMD), each domain a random ``max_samples`` of its inputs."""
    from transferlab.similarity.report import block_features

    inputs = {"source": source_x, **intermediates, "target": target_x}
    features = {}
    for name, x in inputs.items():
        blocks = block_features(model, _random_rows(x, max_samples, seed))
        features[name] = blocks[list(blocks)[-2]]
    layer = list(blocks)[-2]
    return {"feature_layer": layer, "intermediates": list(intermediates),
            **chain_distances(features, seed=seed)}
