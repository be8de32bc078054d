"""Squared distances and the median heuristic for Gaussian kernels: shared by the MMD test
(:mod:`transferlab.similarity.mmd`) and the methods that weigh with a kernel, without importing the
similarity package (its report pulls in plotting)."""

from __future__ import annotations

import torch


def sq_dists(a: torch.Tensor, b: torch.Tensor, a_sq: torch.Tensor | None = None,
             b_sq: torch.Tensor | None = None) -> torch.Tensor:
    """‖a_i − b_j‖² for every pair, through one matrix product (row norms may be given)."""
    a_sq = (a * a).sum(1) if a_sq is None else a_sq
    b_sq = (b * b).sum(1) if b_sq is None else b_sq
    d = a @ b.T
    d.mul_(-2.0).add_(a_sq[:, None]).add_(b_sq[None, :])
    return d.clamp_min_(0.0)


def median_bandwidth(z: torch.Tensor, seed: int = 0, max_points: int = 1000) -> float:
    """Median of pairwise squared distances (on a seeded subsample of at most ``max_points``)."""
    if len(z) > max_points:
        g = torch.Generator().manual_seed(seed)
        z = z[torch.randperm(len(z), generator=g)[:max_points]]
    z = z - z.mean(0)
    d = sq_dists(z, z)
    off = d[~torch.eye(len(z), dtype=torch.bool)]
    positive = off[off > 0]
    return float(positive.median()) if len(positive) else 1.0
