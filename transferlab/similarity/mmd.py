r"""Maximum mean discrepancy with a multi-kernel Gaussian family, and its permutation test.

Kernel: the average of Gaussian kernels :math:`k_\sigma(x, y) = \exp(-\|x-y\|^2 / (2\sigma^2))`
whose bandwidths are the median heuristic :math:`\sigma_0^2 = \mathrm{median}\{\|z_i - z_j\|^2\}`
(over the pooled sample) times a geometric range (``kernel_mults``, default 2^-2 .. 2^2), as in DAN
(Long et al., 2015). When the multipliers are successive powers of two (the default) only the widest
kernel needs an ``exp``; each narrower one is the square of the previous.

Unbiased quadratic-time estimator (Gretton et al., 2012, eq. 3)::

    MMD²_u = 1/(n(n-1)) Σ_{i≠j} k(x_i,x_j) + 1/(m(m-1)) Σ_{i≠j} k(y_i,y_j) − 2/(nm) Σ_{i,j} k(x_i,y_j)

Permutation test: the pooled kernel matrix K (zero diagonal, K₀) is computed once, tile by tile and
only its upper triangle (K is symmetric), so memory stays at ``block × (n+m)``. For a split of the
pooled sample given by an indicator a (1 = "x"), with r = K₀1 and T = 1ᵀr::

    S_xx = aᵀK₀a,   S_xy = rᵀa − S_xx,   S_yy = T − 2rᵀa + S_xx

so every permutation (a column of A) costs one product K₀A, shared by all permutations at once.
The p-value is (1 + #{null ≥ observed}) / (1 + P).

Confidence interval: by default normal, with the variance of the first-order (Hoeffding) projection
of the U-statistic, 4/n Var_i[g_xx(x_i) − g_xy(x_i)] + 4/m Var_j[g_yy(y_j) − g_yx(y_j)], read off
K₀a and r at no extra cost, plus the permutation null's variance (the projection vanishes when the
domains match, and the null's spread is then the statistic's own). With ``n_bootstrap > 0``: a
percentile bootstrap instead (count vectors c instead of indicators, resampling x and y separately;
each bootstrap costs two more columns of K₀A).

Precision: ``dtype="float64"`` (default) matches a plain float64 implementation to ~1e-12;
``dtype="float32"`` computes the kernel tiles in single precision (twice the throughput) and sums
tiles in float64: MMD² to ~1e-4 relative when the shift is clear, identical decisions in practice.
Features are centred on the pooled mean first, which leaves distances unchanged and keeps the
‖a‖² + ‖b‖² − 2a·b expansion from cancelling.

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
from transferlab.kernels import median_bandwidth
from transferlab.kernels import sq_dists as _sq_dists

DEFAULT_MULTS = (0.25, 0.5, 1.0, 2.0, 4.0)
QUADRATIC_LIMIT = 12_000  # pooled samples; above this "auto" takes the linear-time estimator
DTYPES = {"float64": torch.float64, "float32": torch.float32}
BAND_BYTES = 128 << 20  # one band of the kernel matrix; the computation holds two


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
    ci_method: str = "asymptotic"
    dtype: str = "float64"

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


def _pair(x, y) -> tuple[torch.Tensor, torch.Tensor]:
    xt, yt = _as_tensor(x, "x"), _as_tensor(y, "y")
    if xt.shape[1] != yt.shape[1]:
        raise DataError(f"x and y must have the same number of features, got {xt.shape[1]} and {yt.shape[1]}")
    return xt, yt


def _kernel_(d: torch.Tensor, sigmas2: Sequence[float]) -> torch.Tensor:
    """The averaged Gaussian kernel of squared distances ``d`` (which it may overwrite)."""
    s = sorted(sigmas2, reverse=True)
    if all(abs(s[i] / s[i + 1] - 2.0) < 1e-9 for i in range(len(s) - 1)):
        # exp(-d/(2σ²/2)) = exp(-d/(2σ²))²: one exp, then a squaring per narrower kernel.
        e = d.mul_(-0.5 / s[0]).exp_()
        acc = e.clone()
        for _ in s[1:]:
            acc.add_(e.mul_(e))
    else:
        acc = torch.zeros_like(d)
        for s2 in s:
            acc.add_(torch.exp(d * (-0.5 / s2)))
    return acc.div_(len(s))


def pooled_kernel_products(z: torch.Tensor, cols: torch.Tensor, sigmas2: Sequence[float], *,
                           block_size: int = 2048, dtype: torch.dtype = torch.float64
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """``K₀ @ cols`` and ``K₀ @ 1`` for the pooled kernel matrix K₀ (zero diagonal), never holding
    more than a ``block_size × len(z)`` band of it (fewer rows when that band would pass
    ``BAND_BYTES``). Results in float64."""
    n = len(z)
    itemsize = torch.empty((), dtype=dtype).element_size()
    block_size = max(1, min(block_size, max(128, BAND_BYTES // (n * itemsize))))
    zc = (z - z.mean(0)).to(dtype)
    sq = (zc * zc).sum(1)
    cols_d = cols.to(dtype)
    out = torch.zeros(n, cols.shape[1], dtype=torch.float64)
    rows = torch.zeros(n, dtype=torch.float64)
    for s in range(0, n, block_size):
        e = min(s + block_size, n)
        # The band of rows s:e against columns s: (the upper triangle and the diagonal tile).
        k = _kernel_(_sq_dists(zc[s:e], zc[s:], sq[s:e], sq[s:]), sigmas2)
        k[:, :e - s].fill_diagonal_(0.0)
        out[s:e] += (k @ cols_d[s:]).to(torch.float64)
        rows[s:e] += k.sum(1, dtype=torch.float64)
        if e < n:  # the mirrored lower triangle
            below = k[:, e - s:]
            out[e:] += (below.T @ cols_d[s:e]).to(torch.float64)
            rows[e:] += below.sum(0, dtype=torch.float64)
    return out, rows


def _stats(s_xx, s_xy, s_yy, n_x: int, n_y: int):
    return s_xx / (n_x * (n_x - 1)) + s_yy / (n_y * (n_y - 1)) - 2.0 * s_xy / (n_x * n_y)


def _bandwidths(z: torch.Tensor, kernel_mults: Sequence[float] | None, seed: int) -> list[float]:
    mults = tuple(kernel_mults or DEFAULT_MULTS)
    if any(m <= 0 for m in mults):
        raise ConfigError(f"kernel_mults must be positive, got {list(mults)}")
    sigma0 = median_bandwidth(z, seed)
    return [sigma0 * m for m in mults]


def mmd_test(x, y, *, n_permutations: int = 200, estimator: Literal["auto", "quadratic", "linear"] = "auto",
             kernel_mults: Sequence[float] | None = None, seed: int = 0, n_bootstrap: int = 0,
             confidence: float = 0.95, block_size: int = 2048,
             dtype: Literal["float64", "float32"] = "float64") -> MMDResult:
    """Two-sample test of whether ``x`` (n×d) and ``y`` (m×d) come from one distribution.

    Returns an :class:`MMDResult` with ``mmd2``, ``p_value``, a ``confidence`` interval, the null
    distribution, the bandwidths used and a ``normalised`` score in [0, 1]."""
    start = time.perf_counter()
    xt, yt = _pair(x, y)
    if n_permutations < 1:
        raise ConfigError(f"n_permutations must be at least 1, got {n_permutations}")
    if n_bootstrap < 0:
        raise ConfigError(f"n_bootstrap must be 0 or more, got {n_bootstrap}")
    if estimator not in ("auto", "quadratic", "linear"):
        raise ConfigError(f"estimator must be auto, quadratic or linear, got '{estimator}'")
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be float64 or float32, got '{dtype}'")
    if block_size < 1:
        raise ConfigError(f"block_size must be at least 1, got {block_size}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must lie in (0, 1), got {confidence}")
    z = torch.cat([xt, yt])
    sigmas2 = _bandwidths(z, kernel_mults, seed)
    n_x, n_y = len(xt), len(yt)
    chosen = estimator if estimator != "auto" else ("quadratic" if n_x + n_y <= QUADRATIC_LIMIT else "linear")
    if chosen == "linear":
        result = _linear(xt, yt, sigmas2, seed, confidence)
    else:
        result = _quadratic(z, n_x, n_y, sigmas2, n_permutations, n_bootstrap, seed, confidence, block_size,
                            DTYPES[dtype])
    result.bandwidths = [math.sqrt(s) for s in sigmas2]
    result.dtype = dtype
    result.seconds = time.perf_counter() - start
    return result


def _quadratic(z, n_x, n_y, sigmas2, n_perm, n_boot, seed, confidence, block, dtype) -> MMDResult:
    n = n_x + n_y
    g = torch.Generator().manual_seed(seed)
    observed = torch.zeros(n, 1, dtype=torch.float64)
    observed[:n_x] = 1.0
    # Permutation p: the first n_x entries of a random ordering go to "x".
    perms = torch.zeros(n, n_perm, dtype=torch.float64)
    order = torch.argsort(torch.rand(n_perm, n, generator=g), dim=1)[:, :n_x]
    perms.scatter_(0, order.T.contiguous(), 1.0)
    # Bootstrap: resample x and y separately, with replacement, as count vectors.
    cx = torch.zeros(n, n_boot, dtype=torch.float64)
    cy = torch.zeros(n, n_boot, dtype=torch.float64)
    for b in range(n_boot):
        cx[:n_x, b] = torch.bincount(torch.randint(0, n_x, (n_x,), generator=g), minlength=n_x).double()
        cy[n_x:, b] = torch.bincount(torch.randint(0, n_y, (n_y,), generator=g), minlength=n_y).double()
    cols = torch.cat([observed, perms, cx, cy], dim=1)
    k_cols, row_sums = pooled_kernel_products(z, cols, sigmas2, block_size=block, dtype=dtype)
    total = row_sums.sum()

    def split_stats(a, ka):
        s_xx = (a * ka).sum(0)
        ra = row_sums @ a
        return s_xx, ra - s_xx, total - 2 * ra + s_xx

    s_xx, s_xy, s_yy = split_stats(cols[:, :1], k_cols[:, :1])
    mmd2 = float(_stats(s_xx, s_xy, s_yy, n_x, n_y)[0])
    null = _stats(*split_stats(cols[:, 1:1 + n_perm], k_cols[:, 1:1 + n_perm]), n_x, n_y).numpy()
    p_value = (1.0 + float((null >= mmd2).sum())) / (1.0 + n_perm)

    alpha = 1.0 - confidence
    if n_boot:
        b0 = 1 + n_perm
        kcx, kcy = k_cols[:, b0:b0 + n_boot], k_cols[:, b0 + n_boot:]
        # Pairs of a sample with a copy of itself are left out (they would count k(z, z) = 1 and bias
        # the resampled statistic upwards): the within-set means run over pairs of distinct samples.
        pairs_x = n_x * (n_x - 1) - (cx * (cx - 1)).sum(0)
        pairs_y = n_y * (n_y - 1) - (cy * (cy - 1)).sum(0)
        boot = ((cx * kcx).sum(0) / pairs_x + (cy * kcy).sum(0) / pairs_y
                - 2.0 * (cx * kcy).sum(0) / (n_x * n_y)).numpy()
        lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
        ci_method = f"bootstrap ({n_boot} resamples)"
    else:
        k_to_x = k_cols[:, 0]
        k_to_y = row_sums - k_to_x
        hx = k_to_x[:n_x] / (n_x - 1) - k_to_y[:n_x] / n_y
        hy = k_to_y[n_x:] / (n_y - 1) - k_to_x[n_x:] / n_x
        var = 4.0 * float(hx.var(unbiased=False)) / n_x + 4.0 * float(hy.var(unbiased=False)) / n_y
        var += float(np.var(null))
        from scipy.stats import norm

        half = float(norm.ppf(1 - alpha / 2)) * math.sqrt(var)
        lo, hi = mmd2 - half, mmd2 + half
        ci_method = "asymptotic (Hoeffding projection + permutation null variance)"
    # MMD² = E k(x,x') + E k(y,y') − 2 E k(x,y) ≤ E k(x,x') + E k(y,y'): the ratio lies in [0, 1].
    scale = float(s_xx[0]) / (n_x * (n_x - 1)) + float(s_yy[0]) / (n_y * (n_y - 1))
    normalised = float(min(1.0, max(0.0, mmd2 / max(scale, 1e-12))))
    return MMDResult(mmd2, p_value, (float(lo), float(hi)), "quadratic", [], n_x, n_y, n_perm, normalised, null,
                     ci_method=ci_method)


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
                     normalised, null, ci_method="asymptotic (normal, linear-time statistic)")


def mmd2_statistic(x, y, *, kernel_mults: Sequence[float] | None = None, seed: int = 0,
                   dtype: Literal["float64", "float32"] = "float64",
                   sigmas2: Sequence[float] | None = None) -> float:
    """The unbiased MMD² alone (no test), for many small comparisons such as per-class profiles.
    ``sigmas2`` fixes the kernels' squared bandwidths (instead of the pair's own median heuristic),
    so that MMD² values of different pairs share one kernel (transferlab/similarity/chain.py)."""
    xt, yt = _pair(x, y)
    z = torch.cat([xt, yt])
    n_x, n_y = len(xt), len(yt)
    a = torch.zeros(n_x + n_y, 1, dtype=torch.float64)
    a[:n_x] = 1.0
    sigmas2 = list(sigmas2) if sigmas2 is not None else _bandwidths(z, kernel_mults, seed)
    ka, rows = pooled_kernel_products(z, a, sigmas2, dtype=DTYPES[dtype])
    s_xx = float((a * ka).sum())
    ra = float(rows @ a[:, 0])
    return float(_stats(s_xx, ra - s_xx, float(rows.sum()) - 2 * ra + s_xx, n_x, n_y))
