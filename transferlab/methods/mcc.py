"""``mcc``: minimum class confusion (Jin et al. 2020, "Minimum Class Confusion for Versatile
Domain Adaptation").

On a target batch of B samples with logits Z (B × C):

    Ŷ_ij   = exp(Z_ij / T) / Σ_j' exp(Z_ij' / T)                 temperature-rescaled predictions
    H_i    = −Σ_j Ŷ_ij log Ŷ_ij                                  uncertainty of sample i
    W_ii   = B (1 + exp(−H_i)) / Σ_i' (1 + exp(−H_i'))           confident samples weigh more
    C_jj'  = Σ_i W_ii Ŷ_ij Ŷ_ij'       (C = Ŷᵀ W Ŷ)              class correlation
    C̃_jj' = C_jj' / Σ_j'' C_jj''                                 category normalisation (rows)
    L_MCC  = (1 / C) Σ_j Σ_{j' ≠ j} |C̃_jj'|                      confusion between different classes

    L = CE_s + trade_off · L_MCC

It needs no discriminator and no feature alignment: it only asks the classifier not to hedge
between classes on the target, which is why it works on top of any source network. T = 2.5 and
trade-off 1 are the paper's settings for every benchmark.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from transferlab.methods.alignment import AlignmentInputs, fit_with_alignment
from transferlab.methods.base import AdaptationData, UnsupervisedConfig, UnsupervisedMethod
from transferlab.methods.cdan import entropy_weights
from transferlab.methods.registry import register
from transferlab.training import AdaptResult


def class_confusion(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """C̃: the row-normalised class correlation matrix Ŷᵀ W Ŷ of a batch (C × C)."""
    probs = F.softmax(logits / temperature, dim=1)
    # W_ii is CDAN's entropy weighting (mean 1, so the weights sum to B), a constant of the batch.
    c = probs.T @ (entropy_weights(probs).unsqueeze(1) * probs)
    return c / c.sum(1, keepdim=True)


def mcc_loss(logits: torch.Tensor, temperature: float = 2.5) -> torch.Tensor:
    """L_MCC = (1/C) Σ_j Σ_{j'≠j} |C̃_jj'| (0 when every target prediction is one-hot)."""
    c = class_confusion(logits, temperature)
    n_classes = c.shape[0]
    return (c.sum() - torch.trace(c)) / n_classes


class MccConfig(UnsupervisedConfig):
    trade_off: float = Field(1.0, ge=0, description="weight μ of the class-confusion loss (paper: 1)")
    temperature: float = Field(2.5, gt=0, description="softmax temperature T of the target predictions "
                                                      "(paper: 2.5)")


@register
class Mcc(UnsupervisedMethod):
    name = "mcc"
    relative_step_cost = 0.65
    description = "minimises the class confusion of the target predictions (MCC)"
    Config = MccConfig

    def train(self, source_model, data: AdaptationData, config: MccConfig, settings, log) -> AdaptResult:
        def align(a: AlignmentInputs):
            return {"align": mcc_loss(a.logits_t, config.temperature)}

        return fit_with_alignment(source_model, data, config, settings, log, self.name, align)
