"""``progressive``: a progressive neural network (Rusu et al. 2016).

The source model becomes a frozen column; a new target column of the same architecture
learns the target task, reading the source column's activations through lateral connections
(see :mod:`transferlab.models.progressive`). The source column never changes, so transfer can
add knowledge but never erase it. The target column starts from the source weights
(``target_column_init='source'``, practical with few labels) or from scratch as in the paper.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from transferlab.methods.base import AdaptationData, Method, MethodConfig
from transferlab.methods.heads import needs_new_head, target_spec
from transferlab.methods.registry import register
from transferlab.methods.target_training import fit_on_labelled_target
from transferlab.models import build_model
from transferlab.training import AdaptResult, freeze, param_group


class ProgressiveConfig(MethodConfig):
    target_column_init: Literal["source", "scratch"] = Field(
        "source", description="initial weights of the new target column")


@register
class Progressive(Method):
    name = "progressive"
    relative_step_cost = 0.65
    description = ("progressive network: a frozen source column plus a new target column with lateral "
                   "connections, trained on the target labels (the source model cannot be harmed)")
    needs_target_labels = True
    Config = ProgressiveConfig

    def train(self, source_model, data: AdaptationData, config: ProgressiveConfig, settings, log) -> AdaptResult:
        spec = target_spec(source_model.spec, data).model_copy(update={"progressive": True})
        model = build_model(spec, seed=settings.seed)
        model.source_blocks.load_state_dict(source_model.blocks.state_dict())
        if config.target_column_init == "source":
            model.blocks.load_state_dict(source_model.blocks.state_dict())
            if not needs_new_head(source_model, data):
                model.head.load_state_dict(source_model.head.state_dict())
        freeze(model.source_blocks)
        return fit_on_labelled_target(model, [param_group(model.parameters())], data, settings, log,
                                      description=self.name)
