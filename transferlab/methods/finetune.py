"""``finetune``: all layers trained on the target labels, transferred layers at a lower rate.

The backbone starts from the source weights and learns at ``lr * backbone_lr_mult``; the
head (a new one by default, as when the output layer is replaced) at ``lr * head_lr_mult``.
A small backbone rate keeps the transferred features from being overwritten by a few noisy
target batches before the new head has become sensible.
"""

from __future__ import annotations

from pydantic import Field

from transferlab.methods.base import AdaptationData, Method, MethodConfig
from transferlab.methods.heads import backbone_parameters, student_from
from transferlab.methods.registry import register
from transferlab.methods.target_training import fit_on_labelled_target
from transferlab.training import AdaptResult, param_group


class FinetuneConfig(MethodConfig):
    new_head: bool = Field(True, description="replace the source head by a freshly initialised one")
    backbone_lr_mult: float = Field(0.1, gt=0, description="learning-rate multiplier of the transferred layers")
    head_lr_mult: float = Field(1.0, gt=0, description="learning-rate multiplier of the head")


@register
class Finetune(Method):
    name = "finetune"
    relative_step_cost = 0.38
    description = "fine-tunes every layer on the target labels, transferred layers at a lower learning rate"
    needs_target_labels = True
    Config = FinetuneConfig
    supports_distributed = True  # cross-entropy: a mean over samples

    def train(self, source_model, data: AdaptationData, config: FinetuneConfig, settings, log) -> AdaptResult:
        model = student_from(source_model, config.new_head, settings.seed, data)
        groups = [param_group(backbone_parameters(model), config.backbone_lr_mult),
                  param_group(model.head.parameters(), config.head_lr_mult)]
        return fit_on_labelled_target(model, groups, data, settings, log, description=self.name)
