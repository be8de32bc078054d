"""``multitask``: one shared trunk, one head per domain, trained jointly on both label sets.

Caruana (1997): L = CE(head_s(f(x_s)), y_s) + target_weight * CE(head_t(f(x_t)), y_t).
The source task keeps regularising the shared features while the target head fits the few
target labels. The trunk and the source head start from the source model; the target head is
new. The returned network is the trunk with the target head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from transferlab.methods.base import AdaptationData, Method, MethodConfig
from transferlab.methods.checkpointing import labelled_target_checkpoint
from transferlab.methods.heads import student_from
from transferlab.methods.registry import register
from transferlab.training import (
    AdaptResult,
    BatchStream,
    TrainingStep,
    copy_model,
    param_group,
    run_training,
    seed_everything,
    steps_per_epoch,
)


class MultitaskConfig(MethodConfig):
    target_weight: float = Field(1.0, gt=0, description="weight of the target task's loss")


@register
class Multitask(Method):
    name = "multitask"
    relative_step_cost = 0.69
    description = "shared trunk with a source head and a target head, trained jointly on source and target labels"
    needs_target_labels = True
    uses_source = True
    Config = MultitaskConfig

    def train(self, source_model, data: AdaptationData, config: MultitaskConfig, settings, log) -> AdaptResult:
        seed_everything(settings.seed)
        model = student_from(source_model, new_head=True, seed=settings.seed, data=data)
        source_head = copy_model(source_model.head).requires_grad_(True)
        train, scorer = labelled_target_checkpoint(data, settings)
        streams = {"source": BatchStream(data.source_train, settings.batch_size, settings.seed, "source"),
                   "target": BatchStream(train, settings.batch_size, settings.seed, "target-labelled")}

        def step(s: TrainingStep):
            xs, ys = s.batches["source"]
            xt, yt = s.batches["target"]
            f = model.features(torch.cat([xs, xt]))
            ce_s = F.cross_entropy(source_head(f[:len(xs)]), ys)
            ce_t = F.cross_entropy(model.head(f[len(xs):]), yt)
            return {"loss": ce_s + config.target_weight * ce_t, "source_ce": ce_s, "target_ce": ce_t}

        n = steps_per_epoch([len(train)], settings.batch_size, settings.min_steps_per_epoch,
                            settings.max_steps_per_epoch)
        return run_training(model, [param_group(model.parameters()), param_group(source_head.parameters())], step,
                            streams, scorer, settings, n, log, aux_modules=[source_head], description=self.name)
