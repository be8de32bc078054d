"""``instance-weighting``: reweight source samples by an estimated density ratio, then train.

Covariate-shift correction (Shimodaira 2000; the discriminative estimate of Bickel et al. 2007):
a logistic-regression domain classifier on the source model's features gives

    w(x) = p(target | x) / p(source | x) · n_s / n_t  ≈  p_t(x) / p_s(x)

Weights are clipped at ``max_weight`` (a few huge weights would make training a lottery) and
normalised to mean 1. The network (from the source weights) is then trained on source data with
the weighted cross-entropy Σ w_i CE_i, so the source samples that look like the target count more.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from transferlab.methods.alignment import AlignmentInputs, fit_with_alignment
from transferlab.methods.base import AdaptationData, UnsupervisedConfig, UnsupervisedMethod
from transferlab.methods.registry import register
from transferlab.training import AdaptResult, resolve_device


def feature_array(model, x: np.ndarray, device, batch_size: int = 512) -> np.ndarray:
    """The model's penultimate features of ``x`` (eval mode, no gradient)."""
    model = model.to(device).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(model.features(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(device)).cpu().numpy())
    model.to("cpu")
    return np.concatenate(out)


def density_ratio(fit_source: np.ndarray, fit_target: np.ndarray, at: np.ndarray, max_weight: float, c: float,
                  seed: int) -> np.ndarray:
    """Clipped, mean-1 estimate of p_t(x)/p_s(x) at the samples ``at``, from a domain classifier
    fitted on ``fit_source`` (label 0) vs ``fit_target`` (label 1)."""
    z = np.concatenate([fit_source, fit_target])
    d = np.r_[np.zeros(len(fit_source)), np.ones(len(fit_target))]
    scaler = StandardScaler().fit(z)
    clf = LogisticRegression(C=c, max_iter=1000, random_state=seed).fit(scaler.transform(z), d)
    p = clf.predict_proba(scaler.transform(at))[:, 1].clip(1e-6, 1 - 1e-6)
    w = np.minimum(p / (1 - p) * len(fit_source) / len(fit_target), max_weight)
    return (w / w.mean()).astype(np.float32)


class InstanceWeightingConfig(UnsupervisedConfig):
    trade_off: float = Field(0.0, ge=0, description="unused alignment weight (weights do the adapting)")
    max_weight: float = Field(10.0, gt=1, description="clip density-ratio weights at this value")
    domain_classifier_c: float = Field(0.1, gt=0, description="inverse L2 strength of the domain classifier")
    max_samples: int = Field(5000, ge=10, description="per domain, for fitting the domain classifier")


@register
class InstanceWeighting(UnsupervisedMethod):
    name = "instance-weighting"
    relative_step_cost = 0.89
    description = "reweights source samples by a domain classifier's density-ratio estimate, then trains on them"
    Config = InstanceWeightingConfig

    def train(self, source_model, data: AdaptationData, config: InstanceWeightingConfig, settings, log) -> AdaptResult:
        device = resolve_device(settings.device)
        fs = feature_array(source_model, data.source_train.x, device)
        rng = np.random.default_rng(settings.seed)
        xt = data.target_unlabelled.x
        if len(xt) > config.max_samples:
            xt = xt[rng.choice(len(xt), config.max_samples, replace=False)]
        ft = feature_array(source_model, xt, device)
        fit_source = fs[rng.choice(len(fs), min(len(fs), config.max_samples), replace=False)]
        weights = density_ratio(fit_source, ft, fs, config.max_weight, config.domain_classifier_c, settings.seed)

        def no_alignment(a: AlignmentInputs):
            return {"align": a.features_s.new_zeros(())}

        result = fit_with_alignment(source_model, data, config, settings, log, self.name, no_alignment,
                                    source_weights=weights)
        for h in result.history:
            h["weight_max"] = float(weights.max())
            h["effective_sample_fraction"] = float(weights.sum() ** 2 / (weights ** 2).sum() / len(weights))
        return result
