"""``dan``: deep adaptation network (Long et al. 2015), multi-kernel MMD on task layers.

For source and target activations at a layer, the squared MMD with a sum of Gaussian kernels

    k(a, b) = Σ_u exp(-||a - b||² / (σ² · m_u)),   m_u ∈ kernel_mults (e.g. 1/4 … 4)

is estimated on each mini-batch (biased V-statistic, differentiable):

    MMD² = mean K(S, S) + mean K(T, T) - 2 mean K(S, T)

σ² is the mean pairwise squared distance of the pooled batch (detached), so the kernel family
follows the scale of the layer. DAN penalises the MMD at the task-specific layers: here the
features (penultimate layer) and, with ``layers=['features', 'logits']``, the logits too:

    L = CE_s + trade_off * Σ_layers MMD²

The similarity module's MMD is a statistical test on numpy arrays (not differentiable), so
the loss is written here in torch with the same kernel family.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from transferlab.methods.alignment import AlignmentInputs, fit_with_alignment
from transferlab.methods.base import AdaptationData, UnsupervisedConfig, UnsupervisedMethod
from transferlab.methods.registry import register
from transferlab.training import AdaptResult


def multi_kernel_mmd2(source: torch.Tensor, target: torch.Tensor,
                      kernel_mults: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)) -> torch.Tensor:
    """Biased MMD² between two batches with a sum of Gaussian kernels (differentiable)."""
    z = torch.cat([source, target])
    d2 = torch.cdist(z, z).pow(2)
    n = z.shape[0]
    sigma2 = (d2.sum() / (n * n - n)).detach().clamp_min(1e-8)
    k = sum(torch.exp(-d2 / (sigma2 * m)) for m in kernel_mults)
    ns = source.shape[0]
    return k[:ns, :ns].mean() + k[ns:, ns:].mean() - 2 * k[:ns, ns:].mean()


class DanConfig(UnsupervisedConfig):
    layers: list[Literal["features", "logits"]] = Field(["features", "logits"], min_length=1)
    kernel_mults: list[float] = Field([0.25, 0.5, 1.0, 2.0, 4.0], min_length=1,
                                      description="bandwidth multipliers of the Gaussian kernels")


@register
class Dan(UnsupervisedMethod):
    name = "dan"
    relative_step_cost = 0.73
    description = "multi-kernel MMD between source and target activations of the task layers"
    Config = DanConfig

    def train(self, source_model, data: AdaptationData, config: DanConfig, settings, log) -> AdaptResult:
        mults = tuple(config.kernel_mults)

        def align(a: AlignmentInputs):
            pairs = {"features": (a.features_s, a.features_t), "logits": (a.logits_s, a.logits_t)}
            terms = {f"mmd2_{name}": multi_kernel_mmd2(*pairs[name], mults) for name in config.layers}
            return {"align": sum(terms.values()), **terms}

        return fit_with_alignment(source_model, data, config, settings, log, self.name, align)
