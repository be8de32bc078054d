r"""Maximum mean discrepancy with a multi-kernel Gaussian family, and its permutation test.

Kernel: the average of Gaussian kernels :math:`k_\sigma(x, y) = \exp(-\|x-y\|^2 / (2\sigma^2))`
whose bandwidths are the median heuristic :math:`\sigma_0^2 = \mathrm{median}\{\|z_i - z_j\|^2\}`
(over the pooled sample) times a geometric range (``kernel_mults``, default 2^-2 .. 2^2), as in DAN
(Long et al., 2015).

Unbiased quadratic-time estimator (Gretton et al., 2012, eq. 3)::

    MMD²_u = 1/(n(n-1)) Σ_{i≠j} k(x_i,x_j) + 1/(m(m-1)) Σ_{i≠j} k(y_i,y_j) − 2/(nm) Σ_{i,j} k(x_i,y_j)

Permutation test: the pooled kernel matrix K (zero diagonal, K₀) is computed once, in row blocks
so memory stays at ``block × (n+m)``. For a split of the pooled sample given by an indicator a
(1 = "x"), with r = K₀1 and T = 1ᵀr::

    S_xx = aᵀK₀a,   S_xy = rᵀa − S_xx,   S_yy = T − 2rᵀa + S_xx

so every permutation (a column of A) costs one product K₀A, shared by all permutations at once.
The p-value is (1 + #{null ≥ observed}) / (1 + P). Bootstrap resamples (count vectors c instead of
indicators, with the diagonal terms of repeated draws added back) give the confidence interval.

Linear-time estimator (Gretton et al., 2012, §6): the mean over disjoint pairs of
h = k(x,x') + k(y,y') − k(x,y') − k(x',y), tested against its asymptotic normal null.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Literal, Sequence

import numpy as np
import torch

from transferlab.errors import ConfigError, DataError

DEFAULT_MULTS = (0.25, 0.5, 1.0, 2.0, 4.0)
QUADRATIC_LIMIT = 12_000  # pooled samples; above this "auto" takes the linear-time estimator


@dataclass
class MMDResult:
    mmd2: float
    p_value: float
    ci: tuple[float, float]
    estimator: str
    bandwidths: list[float]
    n_x: int
    n_y: int
    n_permutations: int
    normalised: float
    null: np.ndarray = field(repr=False)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("null")
        d["ci"] = list(self.ci)
        return d


def _as_tensor(a, name: str) -> torch.Tensor:
    t = a.detach().cpu() if isinstance(a, torch.Tensor) else torch.from_numpy(np.asarray(a))
    if t.ndim != 2:
        raise DataError(f"{name} must be a 2-D array (samples × features), got shape {tuple(t.shape)}")
    if t.shape[0] < 2:
        raise DataError(f"{name} needs at least 2 samples, got {t.shape[0]}")
    t = t.to(torch.float64)
    if not torch.isfinite(t).all():
        raise DataError(f"{name} contains NaN or infinite values")
    return t


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return d.clamp_min_(0.0)


def median_bandwidth(z: torch.Tensor, seed: int = 0, max_points: int = 1000) -> float:
    """Median of pairwise squared distances (on a seeded subsample of at most ``max_points``)."""
    if len(z) > max_points:
        g = torch.Generator().manual_seed(seed)
        z = z[torch.randperm(len(z), generator=g)[:max_points]]
    d = _sq_dists(z, z)
    off = d[~torch.eye(len(z), dtype=torch.bool)]
    positive = off[off > 0]
    return float(positive.median()) if len(positive) else 1.0


def _kernel(d: torch.Tensor, sigmas2: Sequence[float]) -> torch.Tensor:
    k = torch.zeros_like(d)
    for s2 in sigmas2:
        k += torch.exp(-d / (2.0 * s2))
    return k / len(sigmas2)


def _stats(s_xx, s_xy, s_yy, n_x: int, n_y: int):
    return s_xx / (n_x * (n_x - 1)) + s_yy / (n_y * (n_y - 1)) - 2.0 * s_xy / (n_x * n_y)


def mmd_test(x, y, *, n_permutations: int = 200, estimator: Literal["auto", "quadratic", "linear"] = "auto",
             kernel_mults: Sequence[float] | None = None, seed: int = 0, n_bootstrap: int = 200,
             confidence: float = 0.95, block_size: int = 2048) -> MMDResult:
    """Two-sample test of whether ``x`` (n×d) and ``y`` (m×d) come from one distribution."""
    start = time.perf_counter()
    xt, yt = _as_tensor(x, "x"), _as_tensor(y, "y")
    if xt.shape[1] != yt.shape[1]:
        raise DataError(f"x and y must have the same number of features, got {xt.shape[1]} and {yt.shape[1]}")
    if n_permutations < 1:
        raise ConfigError(f"n_permutations must be at least 1, got {n_permutations}")
    if estimator not in ("auto", "quadratic", "linear"):
        raise ConfigError(f"estimator must be auto, quadratic or linear, got '{estimator}'")
    mults = tuple(kernel_mults or DEFAULT_MULTS)
    z = torch.cat([xt, yt])
    sigma0 = median_bandwidth(z, seed)
    sigmas2 = [sigma0 * m for m in mults]
    n_x, n_y = len(xt), len(yt)
    chosen = estimator if estimator != "auto" else ("quadratic" if n_x + n_y <= QUADRATIC_LIMIT else "linear")
    if chosen == "linear":
        result = _linear(xt, yt, sigmas2, seed, confidence)
    else:
        result = _quadratic(z, n_x, n_y, sigmas2, n_permutations, n_bootstrap, seed, confidence, block_size)
    result.bandwidths = [math.sqrt(s) for s in sigmas2]
    result.seconds = time.perf_counter() - start
    return result


def _quadratic(z, n_x, n_y, sigmas2, n_perm, n_boot, seed, confidence, block) -> MMDResult:
    n = n_x + n_y
    g = torch.Generator().manual_seed(seed)
    observed = torch.zeros(n, 1, dtype=torch.float64)
    observed[:n_x] = 1.0
    perms = torch.zeros(n, n_perm, dtype=torch.float64)
    for p in range(n_perm):
        perms[torch.randperm(n, generator=g)[:n_x], p] = 1.0
    # Bootstrap: resample x and y separately, with replacement, as count vectors.
    cx = torch.zeros(n, n_boot, dtype=torch.float64)
    cy = torch.zeros(n, n_boot, dtype=torch.float64)
    for b in range(n_boot):
        cx[:n_x, b] = torch.bincount(torch.randint(0, n_x, (n_x,), generator=g), minlength=n_x).double()
        cy[n_x:, b] = torch.bincount(torch.randint(0, n_y, (n_y,), generator=g), minlength=n_y).double()
    cols = torch.cat([observed, perms, cx, cy], dim=1)
    k_cols = torch.empty_like(cols)
    row_sums = torch.empty(n, dtype=torch.float64)
    for s in range(0, n, block):
        kb = _kernel(_sq_dists(z[s:s + block], z), sigmas2)
        idx = torch.arange(s, min(s + block, n))
        kb[idx - s, idx] = 0.0
        k_cols[s:s + block] = kb @ cols
        row_sums[s:s + block] = kb.sum(1)
    total = row_sums.sum()

    def split_stats(a, ka):
        s_xx = (a * ka).sum(0)
        ra = row_sums @ a
        return s_xx, ra - s_xx, total - 2 * ra + s_xx

    s_xx, s_xy, s_yy = split_stats(cols[:, :1], k_cols[:, :1])
    mmd2 = float(_stats(s_xx, s_xy, s_yy, n_x, n_y)[0])
    null = _stats(*split_stats(cols[:, 1:1 + n_perm], k_cols[:, 1:1 + n_perm]), n_x, n_y).numpy()
    p_value = (1.0 + float((null >= mmd2).sum())) / (1.0 + n_perm)

    b0 = 1 + n_perm
    kcx, kcy = k_cols[:, b0:b0 + n_boot], k_cols[:, b0 + n_boot:]
    # Pairs of a sample with a copy of itself are left out (they would count k(z, z) = 1 and bias
    # the resampled statistic upwards): the within-set means run over pairs of distinct samples.
    pairs_x = n_x * (n_x - 1) - (cx * (cx - 1)).sum(0)
    pairs_y = n_y * (n_y - 1) - (cy * (cy - 1)).sum(0)
    boot = ((cx * kcx).sum(0) / pairs_x + (cy * kcy).sum(0) / pairs_y
            - 2.0 * (cx * kcy).sum(0) / (n_x * n_y)).numpy()
    alpha = 1.0 - confidence
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2]) if n_boot else (mmd2, mmd2)
    # MMD² = E k(x,x') + E k(y,y') − 2 E k(x,y) ≤ E k(x,x') + E k(y,y'): the ratio lies in [0, 1].
    scale = float(s_xx[0]) / (n_x * (n_x - 1)) + float(s_yy[0]) / (n_y * (n_y - 1))
    normalised = float(min(1.0, max(0.0, mmd2 / max(scale, 1e-12))))
    return MMDResult(mmd2, p_value, (float(lo), float(hi)), "quadratic", [], n_x, n_y, n_perm, normalised, null)


def _linear(xt, yt, sigmas2, seed, confidence) -> MMDResult:
    g = torch.Generator().manual_seed(seed)
    n = min(len(xt), len(yt)) // 2 * 2
    if n < 2:
        raise DataError("the linear-time estimator needs at least 2 samples in each set")
    x = xt[torch.randperm(len(xt), generator=g)[:n]]
    y = yt[torch.randperm(len(yt), generator=g)[:n]]
    x1, x2, y1, y2 = x[0::2], x[1::2], y[0::2], y[1::2]

    def k(a, b):
        d = ((a - b) ** 2).sum(1)
        return sum(torch.exp(-d / (2 * s)) for s in sigmas2) / len(sigmas2)

    h = k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)
    mmd2 = float(h.mean())
    se = float(h.std(unbiased=True)) / math.sqrt(len(h)) if len(h) > 1 else float("inf")
    from scipy.stats import norm

    p_value = float(norm.sf(mmd2 / se)) if se > 0 else (0.0 if mmd2 > 0 else 1.0)
    zq = float(norm.ppf(0.5 + confidence / 2))
    scale = float((k(x1, x2) + k(y1, y2)).mean())
    normalised = float(min(1.0, max(0.0, mmd2 / max(scale, 1e-12))))
    null = np.random.default_rng(seed).normal(0.0, se, size=200) if np.isfinite(se) else np.zeros(200)
    return MMDResult(mmd2, p_value, (mmd2 - zq * se, mmd2 + zq * se), "linear", [], len(xt), len(yt), 0,
                     normalised, null)


def mmd2_statistic(x, y, *, kernel_mults: Sequence[float] | None = None, seed: int = 0) -> float:
    """The unbiased MMD² alone (no test), for many small comparisons such as per-class profiles."""
    xt, yt = _as_tensor(x, "x"), _as_tensor(y, "y")
    z = torch.cat([xt, yt])
    s0 = median_bandwidth(z, seed)
    sig = [s0 * m for m in (kernel_mults or DEFAULT_MULTS)]
    n_x, n_y = len(xt), len(yt)
    kxx, kyy, kxy = (_kernel(_sq_dists(a, b), sig) for a, b in ((xt, xt), (yt, yt), (xt, yt)))
    s_xx = kxx.sum() - kxx.diagonal().sum()
    s_yy = kyy.sum() - kyy.diagonal().sum()
    return float(_stats(s_xx, kxy.sum(), s_yy, n_x, n_y))
