"""``mixed``: train on source and labelled target together, the target weighted up.

    L = CE(f(x_s), y_s) + target_weight * CE(f(x_t), y_t)

with one head for both (the label spaces are the same): the simplest way to use both data
sets at once. Each step draws one source batch and one target batch, so ``target_weight``
(not the data-set sizes) sets the balance. Starts from the source model (or from scratch).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from transferlab.methods.base import AdaptationData, Method, MethodConfig
from transferlab.methods.checkpointing import labelled_target_checkpoint
from transferlab.methods.heads import student_from
from transferlab.methods.registry import register
from transferlab.models import build_model
from transferlab.training import (
    AdaptResult,
    BatchStream,
    TrainingStep,
    param_group,
    run_training,
    seed_everything,
    steps_per_epoch,
)


class MixedConfig(MethodConfig):
    target_weight: float = Field(1.0, gt=0, description="weight of the target loss against the source loss")
    init: Literal["source", "scratch"] = "source"


@register
class Mixed(Method):
    name = "mixed"
    relative_step_cost = 0.67
    description = "trains one network on source and labelled target data together, with a weight for the target"
    needs_target_labels = True
    uses_source = True
    shared_label_space = True
    Config = MixedConfig

    def train(self, source_model, data: AdaptationData, config: MixedConfig, settings, log) -> AdaptResult:
        seed_everything(settings.seed)
        if config.init == "source":
            model = student_from(source_model, new_head=False, seed=settings.seed)
        else:
            model = build_model(source_model.spec, seed=settings.seed)
        train, scorer = labelled_target_checkpoint(data, settings)
        streams = {"source": BatchStream(data.source_train, settings.batch_size, settings.seed, "source"),
                   "target": BatchStream(train, settings.batch_size, settings.seed, "target-labelled")}

        def step(s: TrainingStep):
            xs, ys = s.batches["source"]
            xt, yt = s.batches["target"]
            logits = model(torch.cat([xs, xt]))
            ce_s = F.cross_entropy(logits[:len(xs)], ys)
            ce_t = F.cross_entropy(logits[len(xs):], yt)
            return {"loss": ce_s + config.target_weight * ce_t, "source_ce": ce_s, "target_ce": ce_t}

        n = steps_per_epoch([len(train)], settings.batch_size, settings.min_steps_per_epoch,
                            settings.max_steps_per_epoch)
        return run_training(model, [param_group(model.parameters())], step, streams, scorer, settings, n, log,
                            description=self.name)
