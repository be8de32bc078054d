"""``distill``: knowledge distillation from the source teacher into a student on target data.

Hinton, Vinyals & Dean (2015). On target inputs (the labelled ones, plus the unlabelled pool
when there is one) the student matches the teacher's softened outputs; on the labelled ones
it also fits the labels:

    L = (1 - alpha) * CE(s(x_l), y_l) + alpha * T² * KL(softmax(t(x)/T) || softmax(s(x)/T))

T² keeps the soft term's gradient scale independent of the temperature. The student starts
from the source weights (``student_init='source'``) or from scratch.
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
    copy_model,
    freeze,
    param_group,
    run_training,
    seed_everything,
    steps_per_epoch,
)


class DistillConfig(MethodConfig):
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the soft (teacher) term")
    student_init: Literal["source", "scratch"] = "source"


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(teacher/T) ‖ softmax(student/T)), averaged over the batch."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                    reduction="batchmean", log_target=True) * t * t


@register
class Distill(Method):
    name = "distill"
    relative_step_cost = 0.8
    description = ("knowledge distillation: a student matches the source teacher's softened outputs on target "
                   "data (labelled, and unlabelled when available) plus the target labels")
    needs_target_labels = True
    uses_unlabelled_target = True
    shared_label_space = True
    Config = DistillConfig

    def train(self, source_model, data: AdaptationData, config: DistillConfig, settings, log) -> AdaptResult:
        seed_everything(settings.seed)
        teacher = freeze(copy_model(source_model))
        if config.student_init == "source":
            student = student_from(source_model, new_head=False, seed=settings.seed)
        else:
            student = build_model(source_model.spec, seed=settings.seed)
        train, scorer = labelled_target_checkpoint(data, settings)
        streams = {"labelled": BatchStream(train, settings.batch_size, settings.seed, "target-labelled")}
        sizes = [len(train)]
        if data.n_target_unlabelled:
            streams["unlabelled"] = BatchStream(data.target_unlabelled, settings.batch_size, settings.seed,
                                                "target-unlabelled")
            sizes.append(data.n_target_unlabelled)

        def step(s: TrainingStep):
            xl, yl = s.batches["labelled"]
            x = torch.cat([xl, s.batches["unlabelled"][0]]) if "unlabelled" in s.batches else xl
            logits = student(x)
            with torch.no_grad():
                t_logits = teacher(x)
            ce = F.cross_entropy(logits[:len(xl)], yl)
            soft = distillation_loss(logits, t_logits, config.temperature)
            return {"loss": (1 - config.alpha) * ce + config.alpha * soft, "target_ce": ce, "distill_kl": soft}

        n = steps_per_epoch(sizes, settings.batch_size, settings.min_steps_per_epoch, settings.max_steps_per_epoch)
        return run_training(student, [param_group(student.parameters())], step, streams, scorer, settings, n, log,
                            aux_modules=[teacher], description=self.name)
