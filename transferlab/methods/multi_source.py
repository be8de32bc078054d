r"""``multi-source``: adapt from several candidate sources at once, each weighted by what it offers the target.

With K labelled sources S_1..S_K (``data.sources``), the domain-adaptation bound of Ben-David et
al. (2010) holds for any mixture S_α = Σ_k α_k S_k (Blitzer et al. 2008; Zhao et al. 2018):

    ε_T(h) ≤ Σ_k α_k ε_{S_k}(h) + ½ d(S_α, T) + λ_α

The weights α (on the simplex) minimise an estimate of its first two terms at the start model h₀:

    J(α) = Σ_k α_k ε̂_k + ½ MMD(S_α, T),     MMD²(S_α, T) = αᵀKα − 2αᵀκ + κ_TT

- ε̂_k: how low an error a classifier on these features can reach on source k: a linear probe
  (logistic regression) on h₀'s penultimate features, fitted on source k's training split and
  scored on its validation split. Not h₀'s own error on source k: the adapted model is trained on
  every kept source's labels, so what the bound's first term asks is whether source k's labels can
  be fitted, not whether h₀ already fits them (a shifted but clean source would lose its weight to
  exactly the shift adaptation removes). A source with noisy or wrong labels keeps a high error;
- K_kl, κ_k, κ_TT: mean Gaussian-kernel values between source k's, source l's and the target's
  samples in h₀'s class-probability space (one space for every source, the output of the very
  hypothesis the bound is about, as the source ranking uses: transferlab.similarity.sources).
  Means over all pairs (V-statistics), so MMD² ≥ 0 for every α; 2σ² in the kernel exp(−‖a−b‖²/2σ²)
  with σ² the median pairwise squared distance of the pooled samples (the MMD test's median
  heuristic, :func:`transferlab.kernels.median_bandwidth`). A kernel bounded by 1 gives
  MMD ≤ 2·TV, the scale of d_HΔH.

J is convex (a linear term plus the RKHS norm of an affine map of α) and is minimised over the
simplex by SLSQP from the uniform mixture. Unlike picking the best single source, a mixture can sit
closer to the target than any of its parts (a target that mixes two sources' styles).

Training: the union of the sources whose weight reaches ``min_weight``, the source cross-entropy
weighted per sample by w_i = α_k N / n_k (source k carries α_k of the loss mass; mean weight 1),
plus ``trade_off`` × CORAL (Sun & Saenko 2016) between the union's features, weighted the same
way, and the target's:

    C_w = B/(B−1) Σ_i p_i (f_i − μ_w)(f_i − μ_w)ᵀ,  p_i = w_i / Σ_j w_j,  μ_w = Σ_i p_i f_i
    L = Σ_i w_i CE_i / B + trade_off · ||C_w − C_t||_F² / (4 d²)

(with equal weights C_w is the ordinary unbiased covariance, and the loss is deep-coral's).
The union is held in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from transferlab.data import Domain, stratified_subsample
from transferlab.kernels import median_bandwidth, sq_dists
from transferlab.methods.alignment import AlignmentInputs, fit_with_alignment
from transferlab.methods.base import AdaptationData, UnsupervisedConfig, UnsupervisedMethod
from transferlab.methods.registry import register
from transferlab.methods.shot import pool_outputs
from transferlab.training import AdaptResult, resolve_device


@dataclass(frozen=True)
class MixtureWeights:
    """The weights α (one per source, summing to 1) and the terms of J at the optimum."""

    names: tuple[str, ...]
    alpha: np.ndarray
    errors: np.ndarray  # ε̂_k
    mmd_single: np.ndarray  # MMD(S_k, T) of each source alone
    mmd_mixture: float
    objective: float


def kernel_means(sources: list[np.ndarray], target: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(K, κ, κ_TT): mean Gaussian-kernel values between every pair of sources, each source and the
    target, and the target with itself; bandwidth: median heuristic on all samples pooled."""
    parts = [torch.as_tensor(np.asarray(p, dtype=np.float64)) for p in [*sources, target]]
    sigma2 = median_bandwidth(torch.cat(parts))

    def mean_k(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(torch.exp(-sq_dists(a, b) / (2 * sigma2)).mean())

    k = len(sources)
    gram = np.array([[mean_k(parts[i], parts[j]) for j in range(k)] for i in range(k)])
    return gram, np.array([mean_k(parts[i], parts[k]) for i in range(k)]), mean_k(parts[k], parts[k])


def mixture_weights(names: list[str], probs_sources: list[np.ndarray], probs_target: np.ndarray,
                    errors: list[float]) -> MixtureWeights:
    """α minimising J (module doc) over the simplex, from each source's and the target's class
    probabilities under the start model and each source's error."""
    gram, cross, tt = kernel_means(probs_sources, probs_target)
    err = np.asarray(errors, dtype=np.float64)

    def mmd(a: np.ndarray) -> float:
        return float(np.sqrt(max(a @ gram @ a - 2 * a @ cross + tt, 0.0)))

    def objective(a: np.ndarray) -> float:
        return float(a @ err) + 0.5 * mmd(a)

    k = len(names)
    start = np.full(k, 1.0 / k)
    found = minimize(objective, start, method="SLSQP", bounds=[(0.0, 1.0)] * k,
                     constraints=[{"type": "eq", "fun": lambda a: a.sum() - 1.0}],
                     options={"ftol": 1e-10, "maxiter": 500})
    alpha = np.clip(found.x, 0.0, None)
    alpha = alpha / alpha.sum()
    singles = np.array([mmd(np.eye(k)[i]) for i in range(k)])
    return MixtureWeights(tuple(names), alpha, err, singles, mmd(alpha), objective(alpha))


def probe_error(f_fit: np.ndarray, y_fit: np.ndarray, f_held: np.ndarray, y_held: np.ndarray, seed: int) -> float:
    """Held-out error of a logistic regression on standardised features (ε̂_k of the module doc)."""
    if len(np.unique(y_fit)) < 2:
        return 0.0
    scaler = StandardScaler().fit(f_fit)
    probe = LogisticRegression(max_iter=1000, random_state=seed).fit(scaler.transform(f_fit), y_fit)
    return float((probe.predict(scaler.transform(f_held)) != y_held).mean())


def weighted_coral_loss(source: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """||C_w(source) − C(target)||_F² / (4 d²), C_w the weighted covariance of the module doc."""
    d, b = source.shape[1], source.shape[0]
    p = weights / weights.sum()
    centred = source - (p[:, None] * source).sum(0, keepdim=True)
    cov_s = (centred * p[:, None]).T @ centred * (b / max(b - 1, 1))
    xt = target - target.mean(0, keepdim=True)
    cov_t = xt.T @ xt / max(target.shape[0] - 1, 1)
    return (cov_s - cov_t).pow(2).sum() / (4 * d * d)


def sample_weights(sizes: list[int], alpha: np.ndarray) -> np.ndarray:
    """w_i = α_k N / n_k for each sample of source k (N = Σ n_k): mean 1, source k's share α_k."""
    total = sum(sizes)
    return np.concatenate([np.full(n, a * total / n, dtype=np.float32) for n, a in zip(sizes, alpha)])


def union(name: str, parts: list[Domain]) -> Domain:
    return Domain(name, np.concatenate([np.asarray(p.x) for p in parts]), np.concatenate([p.y for p in parts]),
                  tuple(parts[0].classes))


class MultiSourceConfig(UnsupervisedConfig):
    trade_off: float = Field(10.0, ge=0, description="weight of the weighted CORAL loss (as deep-coral's)")
    min_weight: float = Field(0.02, ge=0, lt=0.5, description="sources with a smaller mixture weight are left out")
    max_samples: int = Field(1000, ge=20, description="per source and for the target, to estimate the weights")
    weighting: Literal["bound", "union"] = Field(
        "bound", description="bound: α minimising J (module doc); union: every sample counts once "
                             "(α_k ∝ n_k, the plain union, as a baseline)")


@register
class MultiSource(UnsupervisedMethod):
    name = "multi-source"
    needs_several_sources = True
    relative_step_cost = 0.71  # deep-coral's measured step (the same losses, with per-sample weights)
    description = "trains on every candidate source at once, weighted to bound the target error (mixture of sources)"
    Config = MultiSourceConfig

    def weights(self, source_model, data: AdaptationData, config: MultiSourceConfig, seed: int,
                device: str = "cpu") -> MixtureWeights:
        """α for the run's own source (first) and each of ``data.other_sources``, under ``source_model``."""
        device = resolve_device(device)
        model = source_model.to(device)
        pool = data.target_unlabelled.x  # its labels are never read, not even to stratify
        rows = np.sort(np.random.default_rng(seed).permutation(len(pool))[:config.max_samples])
        sources, probs, errors = _sources(data), [], []
        for _, train, val in sources:
            fit, held = (stratified_subsample(d, config.max_samples, seed) for d in (train, val))
            f_fit, logits_fit = pool_outputs(model, fit.x, device)
            probs.append(_softmax(logits_fit))
            errors.append(probe_error(f_fit, fit.y, pool_outputs(model, held.x, device)[0], held.y, seed))
        return mixture_weights([name for name, _, _ in sources], probs,
                               _softmax(pool_outputs(model, pool[rows], device)[1]), errors)

    def train(self, source_model, data: AdaptationData, config: MultiSourceConfig, settings, log) -> AdaptResult:
        sources = _sources(data)
        if config.weighting == "union":
            sizes = np.array([len(train) for _, train, _ in sources], dtype=np.float64)
            alpha, record = sizes / sizes.sum(), {}
        else:
            mix = self.weights(source_model, data, config, settings.seed, settings.device)
            alpha, record = mix.alpha, {"mmd_mixture": mix.mmd_mixture}
        kept = [i for i, a in enumerate(alpha) if a >= config.min_weight]
        trains = [sources[i][1] for i in kept]
        mixed = replace(data, source_train=union("sources", trains),
                        source_val=union("sources-val", [sources[i][2] for i in kept]), other_sources=())
        weights = sample_weights([len(t) for t in trains], alpha[kept] / alpha[kept].sum())

        def align(a: AlignmentInputs):
            w = a.step.batches["source"][2]
            return {"align": weighted_coral_loss(a.features_s, a.features_t, w)}

        result = fit_with_alignment(source_model, mixed, config, settings, log, self.name, align,
                                    source_weights=weights)
        # by position (0: the run's own source, then data.other_sources' order): names need not be metric keys
        record.update({f"source_weight_{i}": float(a) for i, a in enumerate(alpha)})
        for h in result.history:
            h.update(record)
        return result


def _sources(data: AdaptationData) -> list[tuple[str, Domain, Domain]]:
    """(name, train, val) of the run's own source, then of each other candidate."""
    return [("source", data.source_train, data.source_val)] + [(o.name, o.train, o.val) for o in data.other_sources]


def _softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits).double(), 1).numpy()


__all__ = ["MixtureWeights", "MultiSource", "kernel_means", "mixture_weights", "probe_error", "sample_weights",
           "weighted_coral_loss"]
