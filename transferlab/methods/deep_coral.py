"""``deep-coral``: correlation alignment of deep features (Sun & Saenko 2016).

With C_s, C_t the d×d covariance matrices of a source and a target feature batch,

    L_CORAL = ||C_s - C_t||_F² / (4 d²),      L = CE_s + trade_off * L_CORAL

Matching second-order statistics removes shifts that stretch or rotate the feature
distribution (contrast, style) without any adversary.
"""

from __future__ import annotations

import torch
from pydantic import Field

from transferlab.methods.alignment import AlignmentInputs, fit_with_alignment
from transferlab.methods.base import AdaptationData, UnsupervisedConfig, UnsupervisedMethod
from transferlab.methods.registry import register
from transferlab.training import AdaptResult


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||cov(source) - cov(target)||_F² / (4 d²)."""
    d = source.shape[1]

    def cov(x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(0, keepdim=True)
        return x.T @ x / max(x.shape[0] - 1, 1)

    return (cov(source) - cov(target)).pow(2).sum() / (4 * d * d)


class DeepCoralConfig(UnsupervisedConfig):
    trade_off: float = Field(10.0, ge=0, description="weight of the CORAL loss (it is small: divided by 4d²)")


@register
class DeepCoral(UnsupervisedMethod):
    name = "deep-coral"
    relative_step_cost = 0.71
    description = "aligns the covariance of source and target features (Deep CORAL)"
    Config = DeepCoralConfig

    def train(self, source_model, data: AdaptationData, config: DeepCoralConfig, settings, log) -> AdaptResult:
        def align(a: AlignmentInputs):
            return {"align": coral_loss(a.features_s, a.features_t)}

        return fit_with_alignment(source_model, data, config, settings, log, self.name, align)
