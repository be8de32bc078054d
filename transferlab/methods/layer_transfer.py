"""``layer-transfer``: copy the source blocks, freeze k of them, retrain the rest on the target.

Yosinski et al. (2014): early blocks compute general features, late blocks task-specific
ones, so the first ``k`` blocks transfer frozen (``mode='first'``, k from params or from the
similarity stage's per-layer profile). The seeds also describe the reverse for speech, where
the *input* side is speaker-specific and the upper layers are shared: ``mode='last'`` freezes
the last ``k`` feature blocks (and the head, unless ``reinitialise_rest``) and retrains the
blocks before them. Unfrozen blocks start from the source weights, or fresh ones with
``reinitialise_rest``.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from transferlab.errors import ConfigError
from transferlab.methods.base import AdaptationData, Method, MethodConfig
from transferlab.methods.heads import fresh_head, needs_new_head, student_from
from transferlab.methods.registry import register
from transferlab.methods.target_training import fit_on_labelled_target
from transferlab.training import AdaptResult, freeze, param_group


class LayerTransferConfig(MethodConfig):
    k: int = Field(1, ge=0, description="number of feature blocks transferred frozen")
    mode: Literal["first", "last"] = Field("first", description="freeze the first k blocks, or the last k")
    reinitialise_rest: bool = Field(False, description="retrain the unfrozen blocks from fresh weights")


def _reset(module: torch.nn.Module, seed: int) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for sub in module.modules():
            if hasattr(sub, "reset_parameters"):
                sub.reset_parameters()


@register
class LayerTransfer(Method):
    name = "layer-transfer"
    relative_step_cost = 0.27
    description = "copies the source blocks, freezes k of them (first or last) and retrains the rest on target labels"
    needs_target_labels = True
    Config = LayerTransferConfig

    def train(self, source_model, data: AdaptationData, config: LayerTransferConfig, settings, log) -> AdaptResult:
        n_blocks = len(source_model.blocks)
        if config.k > n_blocks:
            raise ConfigError(f"layer-transfer k={config.k} but the network has only {n_blocks} blocks "
                              f"({', '.join(source_model.block_names)})")
        new_task_head = needs_new_head(source_model, data)
        model = student_from(source_model, new_head=False, seed=settings.seed, data=data)
        frozen = range(config.k) if config.mode == "first" else range(n_blocks - config.k, n_blocks)
        for i in range(n_blocks):
            if i in frozen:
                freeze(model.blocks[i])
            elif config.reinitialise_rest:
                _reset(model.blocks[i], settings.seed + i)
        if config.mode == "last" and config.k > 0 and not new_task_head:
            freeze(model.head)  # the shared upper layers include the output layer (unless it is a new task's)
        elif config.reinitialise_rest:
            model.head = fresh_head(model, settings.seed)
        groups = [param_group(model.parameters())]
        if not groups[0]["params"]:
            raise ConfigError("layer-transfer would freeze every parameter: lower k or use source-only")
        return fit_on_labelled_target(model, groups, data, settings, log, description=self.name)
