"""What can be measured with a source model and no source data.

Without source samples there is no two-sample test (no MMD, A-distance or CORAL: each needs both
domains). What the model itself carries can still be compared with the target:

- **Normalisation statistics.** Every batch-norm layer stores the mean μ_s and variance σ_s² of
  its inputs over the source data. The target's own statistics at the same layer (μ_t, σ_t², from
  the target inputs through the model) are compared per channel by the symmetric KL divergence of
  the two Gaussians,

      KL(s‖t) + KL(t‖s) = (σ_s² + Δ²) / (2 σ_t²) + (σ_t² + Δ²) / (2 σ_s²) − 1,      Δ = μ_s − μ_t,

  averaged over channels: 0 when the target looks like the source to that layer.
- **The model's predictions on the target**: mean confidence (top softmax probability), mean
  entropy over log C, information maximisation, and how evenly the predictions spread over the
  classes (entropy of the mean prediction over log C). A shifted target typically lowers confidence
  and collapses predictions onto a few classes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from transferlab.validators import information_maximization

NOT_MEASURED = ["mmd", "layers", "class_conditional", "a_distance", "coral"]
# The normalisation layers whose affine parameters entropy minimisation (tent) can adapt.
_AFFINE_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


@torch.no_grad()
def normalisation_shift(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> list[dict]:
    """Per batch-norm layer: the symmetric KL (module doc) between its source statistics and the target's."""
    layers = [(n, m) for n, m in model.named_modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None]
    if not layers:
        return []
    sums: dict[str, list] = {}

    def hook(name):
        def record(module, inputs, output):
            a = inputs[0].transpose(0, 1).reshape(inputs[0].shape[1], -1).double()
            s = sums.setdefault(name, [0, 0.0, 0.0])
            s[0] += a.shape[1]
            s[1] = s[1] + a.sum(1)
            s[2] = s[2] + (a * a).sum(1)
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in layers]
    model.eval()
    try:
        for start in range(0, len(x), batch_size):
            model(torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size])))
    finally:
        for h in handles:
            h.remove()
    out = []
    for name, module in layers:
        n, total, squares = sums[name]
        mu_t = total / n
        var_t = (squares / n - mu_t ** 2).clamp_min(1e-8)
        mu_s, var_s = module.running_mean.double(), module.running_var.double().clamp_min(1e-8)
        delta2 = (mu_s - mu_t) ** 2
        kl = (var_s + delta2) / (2 * var_t) + (var_t + delta2) / (2 * var_s) - 1
        out.append({"layer": name, "symmetric_kl": float(kl.mean()), "channels": int(len(kl))})
    return out


def prediction_profile(logits: np.ndarray) -> dict:
    """Confidence, entropy, IM and class spread of the model's predictions on the target (module doc)."""
    z = torch.from_numpy(np.asarray(logits, dtype=np.float64))
    p = torch.softmax(z, 1).numpy()
    c = p.shape[1]
    entropy = -(p * np.log(np.clip(p, 1e-12, 1))).sum(1)
    mean = p.mean(0)
    return {"confidence": float(p.max(1).mean()), "entropy": float(entropy.mean() / np.log(c)),
            "information_maximisation": information_maximization(logits),
            "class_spread": float(-(mean * np.log(np.clip(mean, 1e-12, 1))).sum() / np.log(c)),
            "predicted_shares": [float(v) for v in np.bincount(p.argmax(1), minlength=c) / len(p)]}


def source_free_section(model: nn.Module, x: np.ndarray, logits: np.ndarray) -> dict:
    """The report's part for a model without source data: what could and could not be measured."""
    norms = normalisation_shift(model, x)
    affine = sum(1 for m in model.modules() if isinstance(m, _AFFINE_NORMS) and getattr(m, "weight", None) is not None)
    return {
        "affine_norm_layers": affine,
        "not_measured": NOT_MEASURED,
        "why": "there is no source data: MMD, its test, the per-layer and per-class profiles, the proxy "
               "A-distance and CORAL all compare source samples with target samples",
        "normalisation": {"layers": norms,
                          "mean_symmetric_kl": float(np.mean([n["symmetric_kl"] for n in norms])) if norms else None,
                          "note": None if norms else "the model has no batch-norm layers, so it carries no source "
                                                     "statistics to compare with"},
        "predictions": prediction_profile(logits),
    }
