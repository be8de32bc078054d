"""``linear-probe``: feature extraction. Freeze every transferred block, train a new head.

The seeds' "replace the output layer and train only it": the source network is a fixed
feature extractor f, and only the linear classifier W f(x) + b is learnt on the target labels.
"""

from __future__ import annotations

from pydantic import Field

from transferlab.methods.base import AdaptationData, Method, MethodConfig
from transferlab.methods.heads import student_from
from transferlab.methods.registry import register
from transferlab.methods.target_training import fit_on_labelled_target
from transferlab.training import AdaptResult, freeze, param_group


class LinearProbeConfig(MethodConfig):
    new_head: bool = Field(True, description="start the head from fresh weights (else from the source head)")


@register
class LinearProbe(Method):
    name = "linear-probe"
    relative_step_cost = 0.04
    description = "freezes the transferred feature blocks and trains only a new output layer on the target labels"
    needs_target_labels = True
    Config = LinearProbeConfig
    supports_distributed = True  # cross-entropy: a mean over samples

    def train(self, source_model, data: AdaptationData, config: LinearProbeConfig, settings, log) -> AdaptResult:
        model = student_from(source_model, config.new_head, settings.seed, data)
        freeze(model.blocks)
        return fit_on_labelled_target(model, [param_group(model.head.parameters())], data, settings, log,
                                      description=self.name)
