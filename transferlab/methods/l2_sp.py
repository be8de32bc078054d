"""``l2-sp``: conservative fine-tuning that penalises distance to the source weights.

Li, Grandvalet & Davoine (2018), "Explicit inductive bias for transfer learning":

    L = CE_target + (alpha / 2) * ||w - w_source||²  (transferred weights)
                  + (beta / 2)  * ||w_head||²         (a new head has no source to stay near)

Unlike weight decay towards 0, the pull is towards the source solution, so what the source
learnt is kept unless the target labels give reason to move. Plain weight decay is switched
off for the transferred weights (it would pull towards 0 instead).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from transferlab.methods.base import AdaptationData, Method, MethodConfig
from transferlab.methods.heads import backbone_parameters, needs_new_head, student_from
from transferlab.methods.registry import register
from transferlab.methods.target_training import fit_on_labelled_target
from transferlab.training import AdaptResult, param_group


class L2SPConfig(MethodConfig):
    alpha: float = Field(0.1, ge=0, description="strength of the pull towards the source weights")
    beta: float = Field(0.01, ge=0, description="L2 strength on the new head")
    new_head: bool = Field(False, description="replace the source head by a fresh one (penalised by beta); "
                                              "always so for a new task")


def l2sp_penalty(model: nn.Module, reference: dict[str, torch.Tensor], alpha: float, beta: float) -> torch.Tensor:
    """(alpha/2) Σ ||w - w_ref||² over parameters in ``reference`` + (beta/2) Σ ||w||² over the others."""
    total = torch.zeros((), device=next(model.parameters()).device)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name in reference:
            total = total + 0.5 * alpha * (p - reference[name].to(p.device)).pow(2).sum()
        else:
            total = total + 0.5 * beta * p.pow(2).sum()
    return total


@register
class L2SP(Method):
    name = "l2-sp"
    relative_step_cost = 0.41
    description = "conservative fine-tuning on target labels with an L2 penalty towards the source weights"
    needs_target_labels = True
    Config = L2SPConfig

    def train(self, source_model, data: AdaptationData, config: L2SPConfig, settings, log) -> AdaptResult:
        model = student_from(source_model, config.new_head, settings.seed, data)
        new_head = config.new_head or needs_new_head(source_model, data)
        reference = {n: p.detach().clone() for n, p in model.named_parameters()
                     if not (new_head and n.startswith("head."))}
        groups = [param_group(backbone_parameters(model), weight_decay=0.0),
                  param_group(model.head.parameters(), weight_decay=0.0)]

        def penalty(m, step):
            return {"l2sp_penalty": l2sp_penalty(m, reference, config.alpha, config.beta)}

        return fit_on_labelled_target(model, groups, data, settings, log, description=self.name, extra_loss=penalty)
