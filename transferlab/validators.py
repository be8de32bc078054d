"""Label-free validators: score an adapted model on the target without any target label.

Used when the target has no labelled data, to rank trial runs and hyperparameters. All are
pure functions over logits / probabilities / features (numpy arrays or torch tensors).

Information maximisation (IM; Gomes et al. 2010, Shi & Sha 2012, used as a validator by
Musgrave et al. 2022). With p̂ᵢ = softmax(zᵢ) on N target samples and p̄ = (1/N) Σ p̂ᵢ,

    IM = H(p̄) − (1/N) Σ H(p̂ᵢ),        H(p) = −Σ_c p_c log p_c

The first term (diversity) is high when predictions spread over classes, the second
(confidence) is low when each prediction is sure. IM ∈ [0, log C]; **higher is better**.

Soft neighbourhood density (SND; Saito et al., "Tune it the right way", ICCV 2021). With
p̂ᵢ L2-normalised to unit vectors, the similarity Sᵢⱼ = p̂ᵢ·p̂ⱼ / τ for i ≠ j (the diagonal is
excluded), Pᵢⱼ = softmax_j(Sᵢⱼ), and

    SND = (1/N) Σᵢ H(Pᵢ·)           τ = 0.05 as in the paper

High SND means every sample has many close neighbours (dense clusters); **higher is better**.
Known blind spot, documented in the paper and visible in the tests: a model whose outputs are
all (nearly) identical, e.g. an untrained network with near-uniform softmax, makes every
neighbour equally close and reaches the maximum log(N−1). ``centre=True`` subtracts p̄ from
every p̂ᵢ before normalising (our variant, not the paper's): a collapsed model then has no
common direction left and scores low, while class clusters of a good model survive.

Deep embedded validation (DEV; You et al., ICML 2019). Features f of source-train (n_s),
target (n_t) and a held-out source-validation set with per-sample losses ℓⱼ. A domain
classifier (logistic regression, regularisation picked on a seeded held-out split) estimates
the density ratio on validation samples

    wⱼ = p(target | fⱼ) / p(source | fⱼ) · n_s / n_t

and the importance-weighted loss Lⱼ = wⱼ ℓⱼ gets the control-variate correction (E[w] = 1):

    η = −Cov(L, w) / Var(w),       R_DEV = mean(L) + η·mean(w) − η

R_DEV estimates the target risk: **lower is better**. :class:`DEVResult` carries ``risk`` and
``score = −risk`` so every validator can be ranked "higher is better".
"""

from __future__ import annotations

import copy
import math
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from transferlab.errors import DataError

_EPS = 1e-12


def _array(x: object, what: str, ndim: int) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != ndim:
        raise DataError(f"{what} must be a {ndim}-D array, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{what} is empty: a validator needs at least one sample")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{what} contains NaN or infinite values")
    return arr


def seeded_subset(n: int, max_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``max_samples`` of ``n`` rows, drawn from ``rng`` (all rows when fewer).

    Random rather than the first rows: a pool sorted by class would otherwise show only some classes."""
    return np.sort(rng.choice(n, size=max_samples, replace=False)) if n > max_samples else np.arange(n)


def softmax(logits: object) -> np.ndarray:
    z = _array(logits, "logits", 2)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    return -np.sum(p * np.log(np.clip(p, _EPS, None)), axis=axis)


def _as_probs(values: object, from_logits: bool) -> np.ndarray:
    if from_logits:
        return softmax(values)
    p = _array(values, "probabilities", 2)
    if np.any(p < -1e-9) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise DataError("probabilities must be non-negative rows that sum to one (pass from_logits=True for logits)")
    return p


def information_maximization(values: object, *, from_logits: bool = True) -> float:
    """H(mean prediction) − mean H(prediction); higher is better, in [0, log C]."""
    p = _as_probs(values, from_logits)
    return float(_entropy(p.mean(axis=0)) - _entropy(p, axis=1).mean())


def soft_neighbourhood_density(
    values: object, *, temperature: float = 0.05, from_logits: bool = True, centre: bool = False
) -> float:
    """Mean entropy of each sample's softmax similarity over the other samples; higher is better."""
    if temperature <= 0:
        raise DataError(f"the SND temperature must be positive, got {temperature}")
    p = _as_probs(values, from_logits)
    if p.shape[0] < 2:
        raise DataError("SND needs at least two target samples")
    if centre:
        p = p - p.mean(axis=0, keepdims=True)
    unit = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), _EPS)
    sim = unit @ unit.T / temperature
    np.fill_diagonal(sim, -np.inf)  # a sample is not its own neighbour
    sim = sim - sim.max(axis=1, keepdims=True)
    w = np.exp(sim)
    w = w / w.sum(axis=1, keepdims=True)
    return float(_entropy(w, axis=1).mean())


@dataclass(frozen=True)
class DEVResult:
    risk: float  # importance-weighted source-validation loss with control variate: lower is better
    score: float  # -risk: higher is better
    eta: float
    weights_mean: float
    domain_classifier_accuracy: float
    domain_classifier_c: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def density_ratio_weights(
    source_features: object, target_features: object, validation_features: object, *, seed: int = 0
) -> tuple[np.ndarray, float, float]:
    """w(f) = p(target|f)/p(source|f) · n_s/n_t on validation features, from a logistic domain classifier.

    The inverse regularisation strength C is chosen from a small grid by log-loss on a seeded
    20 % held-out split, then refitted on everything. Log-loss, not accuracy: the weights are
    built from the classifier's probabilities, and when the domains are nearly separable every C
    reaches the same accuracy while the larger ones give overconfident probabilities and
    exploding weights (on the selection benchmark's rotate-0.8 pair, accuracy-chosen C ranked
    the unadapted source model best and log-loss-chosen C ranked it worst, as test accuracy does).
    Returns (weights, held-out accuracy of the chosen classifier, chosen C).
    """
    fs = _array(source_features, "source features", 2)
    ft = _array(target_features, "target features", 2)
    fv = _array(validation_features, "validation features", 2)
    if not fs.shape[1] == ft.shape[1] == fv.shape[1]:
        raise DataError(
            f"feature dimensions differ: source {fs.shape[1]}, target {ft.shape[1]}, validation {fv.shape[1]}"
        )
    if fs.shape[0] < 5 or ft.shape[0] < 5:
        raise DataError("DEV needs at least 5 source and 5 target samples to fit its domain classifier")
    x = np.concatenate([fs, ft])
    d = np.r_[np.zeros(len(fs), int), np.ones(len(ft), int)]
    scaler = StandardScaler().fit(x)
    x = scaler.transform(x)
    xtr, xte, dtr, dte = train_test_split(x, d, test_size=0.2, random_state=seed, stratify=d)
    # Each fit starts from the previous solution (C grows along the grid) and the final refit
    # from the chosen one. The path stops once held-out log-loss gets worse: the larger C fits it
    # skips are the slowest ones (nearly separable domains), which dominated trial-mode scoring.
    # The path only compares C values, so it solves to tol 1e-3; the refit that gives the weights
    # goes on to sklearn's default 1e-4 (a loose final fit changed DEV's picks among full runs).
    path = LogisticRegression(C=0.01, max_iter=1000, tol=1e-3, random_state=seed, warm_start=True)
    best, best_loss = None, math.inf
    for c in (0.01, 0.1, 1.0, 10.0):
        path.set_params(C=c).fit(xtr, dtr)
        loss = float(log_loss(dte, path.predict_proba(xte)[:, 1], labels=[0, 1]))
        if loss >= best_loss:
            break
        best, best_loss = copy.deepcopy(path), loss
    best_c = best.C
    best_acc = float(best.score(xte, dte))
    clf = best.set_params(tol=1e-4).fit(x, d)
    p_target = np.clip(clf.predict_proba(scaler.transform(fv))[:, 1], 1e-6, 1 - 1e-6)
    w = p_target / (1 - p_target) * (len(fs) / len(ft))
    return w, best_acc, best_c


def dev_risk(weights: object, losses: object) -> tuple[float, float]:
    """Control-variate DEV risk from importance weights and per-sample losses; returns (risk, eta)."""
    w = _array(weights, "weights", 1)
    loss = _array(losses, "losses", 1)
    if w.shape != loss.shape:
        raise DataError(f"{w.size} weights but {loss.size} losses")
    weighted = w * loss
    if w.size < 2:
        return float(weighted.mean()), 0.0
    var_w = w.var(ddof=1)
    # With constant weights the control variate carries no information: eta = 0.
    eta = 0.0 if var_w < 1e-12 else -float(np.cov(weighted, w, ddof=1)[0, 1] / var_w)
    return float(weighted.mean() + eta * w.mean() - eta), eta


def deep_embedded_validation(
    source_features: object,
    target_features: object,
    validation_features: object,
    validation_losses: object,
    *,
    seed: int = 0,
) -> DEVResult:
    """DEV risk of a model (lower is better; ``score`` = −risk is higher-is-better)."""
    w, acc, c = density_ratio_weights(source_features, target_features, validation_features, seed=seed)
    risk, eta = dev_risk(w, validation_losses)
    return DEVResult(risk, -risk, eta, float(w.mean()), acc, c)


# Single-model validators, each "higher is better" in :func:`label_free_scores`; the last four are
# in :mod:`transferlab.probe_validators` ("entropy" is minus the mean prediction entropy).
VALIDATORS = ("im", "snd", "dev", "entropy", "mixval", "reverse", "srcacc_im")
NEEDS_SOURCE = ("dev", "reverse", "srcacc_im")  # weigh labelled source-validation data


@torch.no_grad()
def _forward(model: torch.nn.Module, x: np.ndarray, batch_size: int, device: str,
             features: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """(features or None, logits) of ``model`` on ``x``, batched, as float64."""
    feats, logits = [], []
    for start in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[start:start + batch_size], device=device)
        # Two calls rather than head(features): adapted models promise forward() and
        # features(), not a ``head`` attribute (e.g. a progressive network combines columns).
        if features:
            feats.append(model.features(xb).cpu().numpy())
        logits.append(model(xb).cpu().numpy())
    return (np.concatenate(feats).astype(np.float64) if features else None,
            np.concatenate(logits).astype(np.float64))


def label_free_scores(
    model: torch.nn.Module,
    source_train_x: np.ndarray | None,
    source_val_x: np.ndarray | None,
    source_val_y: np.ndarray | None,
    target_x: np.ndarray,
    *,
    seed: int = 0,
    max_samples: int = 1000,
    batch_size: int = 256,
    device: str = "cpu",
    snd_temperature: float = 0.05,
    validators: Collection[str] = VALIDATORS,
) -> dict[str, float]:
    """The validators of :data:`VALIDATORS` named in ``validators`` (all by default) for a classifier
    (``forward`` = logits, ``.features``), each as "higher is better"; the others are not computed
    (MixVal's forward passes over mixed samples and reverse validation's fit cost more than the rest).

    At most ``max_samples`` of each array are used (a seeded subset) so SND's N×N matrix and
    DEV's domain classifier stay cheap. Returns {"im", "snd", "snd_paper", "dev", "dev_risk"}:
    "snd" is the centred variant (robust to collapsed outputs, used for ranking), "snd_paper"
    the published definition, "dev" = −"dev_risk"; then :func:`transferlab.probe_validators.probe_scores`
    ("entropy", "mixval" with its two probes, "reverse", "srcacc_im"). Without source data
    (``source_*`` None) the validators of :data:`NEEDS_SOURCE` cannot be computed and are left out.
    """
    # Imported here: probe_validators builds on this module's primitives.
    from transferlab.probe_validators import probe_scores

    unknown = set(validators) - set(VALIDATORS)
    if unknown:
        raise DataError(f"unknown label-free validators {sorted(unknown)}; known: {', '.join(VALIDATORS)}")
    rng = np.random.default_rng(seed)

    source = source_val_x is not None and source_train_x is not None
    if len(target_x) < 2 or (source and len(source_val_x) < 2):
        raise DataError("label-free validation needs at least two target and two source-validation samples")
    source = source and any(v in NEEDS_SOURCE for v in validators)  # no source pass nobody reads
    was_training = model.training
    model.eval()
    try:
        # The same seeded subsets whatever is computed: a score alone equals it among the others.
        ti = seeded_subset(len(target_x), max_samples, rng)
        f_t, z_t = _forward(model, target_x[ti], batch_size, device)
        if source:
            si, vi = (seeded_subset(len(source_train_x), max_samples, rng),
                      seeded_subset(len(source_val_x), max_samples, rng))
            f_v, z_v = _forward(model, source_val_x[vi], batch_size, device)
            y_v = np.asarray(source_val_y)[vi]
        scores: dict[str, float] = {}
        if "im" in validators:
            scores["im"] = information_maximization(z_t)
        if "snd" in validators:
            scores.update(snd=soft_neighbourhood_density(z_t, temperature=snd_temperature, centre=True),
                          snd_paper=soft_neighbourhood_density(z_t, temperature=snd_temperature))
        if source and "dev" in validators:
            f_s, _ = _forward(model, source_train_x[si], batch_size, device)
            losses = -np.log(np.clip(softmax(z_v), _EPS, None))[np.arange(len(vi)), y_v]
            dev = deep_embedded_validation(f_s, f_t, f_v, losses, seed=seed)
            scores.update(dev=dev.score, dev_risk=dev.risk)
        scores.update(probe_scores(
            lambda x: _forward(model, x, batch_size, device, features=False)[1], np.asarray(target_x[ti]), z_t, f_t,
            f_v if source else None, z_v if source else None, y_v if source else None, seed=seed,
            validators=validators))
    finally:
        model.train(was_training)
    return scores
