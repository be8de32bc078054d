"""``mean-teacher``: self-ensembling for domain adaptation (French, Mackiewicz & Fisher 2018,
"Self-ensembling for visual domain adaptation"), after the mean teacher of Tarvainen & Valpola 2017.

A student f_θ trains; a teacher f_θ' is the exponential moving average of its weights,
θ' ← α θ' + (1 − α) θ after every update. Each step draws a source batch (x_s, y) and a target
batch x_t; the student sees an augmentation of each, the teacher another augmentation of x_t.
Source and target go through the student in separate passes, so batch-norm normalises each
domain with its own statistics (the paper's per-domain batches). With z = softmax(student(x̃_t)),
z' = softmax(teacher(x̂_t)) over C classes and a target batch of B samples:

    m_i   = 1[max_k z'_ik > ρ]                                   confidence threshold (teacher)
    δ_i   = (1/C) Σ_k (z_ik − z'_ik)²                             squared difference
    L_con = (1/B) Σ_i m_i δ_i
    z̄_k   = (1/B) Σ_i z_ik
    L_bal = (1/B Σ_i m_i) · Σ_k BCE(z̄_k, 1/C),   BCE(p, q) = −q log p − (1 − q) log(1 − p)
    L     = CE(student(x̃_s), y) + w · (L_con + β · L_bal)

The class-balance term stops the student from predicting one class for the whole target; the
authors scale it by the share of confident samples. Defaults are the paper's: α = 0.99,
ρ = 0.968, w = 3, β = 0.005. Augmentation is the weak pipeline (translation, small affine;
:mod:`transferlab.training.augment`), drawn independently for student and teacher.

The teacher is what the method returns, and what chooses the checkpoint (label-free by default):
the paper reports the teacher. It runs in train mode during training, so its batch-norm running
statistics are those of the target batches it sees.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from transferlab.methods.alignment import epoch_steps, source_and_target
from transferlab.methods.base import AdaptationData, UnsupervisedConfig, UnsupervisedMethod
from transferlab.methods.checkpointing import unsupervised_checkpoint
from transferlab.methods.ema import StudentTeacher
from transferlab.methods.heads import student_from
from transferlab.methods.registry import register
from transferlab.training import AdaptResult, TrainingStep, param_group, run_training, seed_everything
from transferlab.training.augment import Augmenter


def self_ensembling_losses(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                           threshold: float) -> dict[str, torch.Tensor]:
    """L_con, L_bal and the share of confident target samples (see module docstring)."""
    z = F.softmax(student_logits, 1)
    with torch.no_grad():
        z_teacher = F.softmax(teacher_logits, 1)
        mask = (z_teacher.max(1).values > threshold).to(z.dtype)
    consistency = (((z - z_teacher) ** 2).mean(1) * mask).mean()
    n_classes = z.shape[1]
    mean_pred = z.mean(0).clamp(1e-6, 1 - 1e-6)
    balance = F.binary_cross_entropy(mean_pred, torch.full_like(mean_pred, 1 / n_classes), reduction="sum")
    return {"consistency": consistency, "class_balance": balance * mask.mean(), "mask_rate": mask.mean()}


class MeanTeacherConfig(UnsupervisedConfig):
    trade_off: float = Field(3.0, ge=0, description="weight w of the unsupervised terms (paper: 3)")
    ema: float = Field(0.99, ge=0, lt=1, description="teacher moving-average rate α (paper: 0.99)")
    confidence: float = Field(0.968, ge=0, lt=1, description="teacher confidence threshold ρ (paper: 0.968)")
    class_balance: float = Field(0.005, ge=0, description="weight β of the class-balance loss (paper: 0.005)")


@register
class MeanTeacher(UnsupervisedMethod):
    name = "mean-teacher"
    relative_step_cost = 0.9
    description = "self-ensembling: a moving-average teacher's confident target predictions train the student"
    Config = MeanTeacherConfig

    def train(self, source_model, data: AdaptationData, config: MeanTeacherConfig, settings, log) -> AdaptResult:
        seed_everything(settings.seed)
        pair = StudentTeacher(student_from(source_model, new_head=False, seed=settings.seed))
        augment = Augmenter(settings.augmentation)

        def step(s: TrainingStep) -> dict[str, torch.Tensor]:
            xs, ys = s.batches["source"]
            xt = s.batches["target"][0]
            ce = F.cross_entropy(pair.student(augment(xs, "weak")), ys)
            student_t = pair.student(augment(xt, "weak"))
            with torch.no_grad():
                teacher_t = pair.teacher(augment(xt, "weak"))
            terms = self_ensembling_losses(student_t, teacher_t, config.confidence)
            unsupervised = terms["consistency"] + config.class_balance * terms["class_balance"]
            return {"loss": ce + config.trade_off * unsupervised, "source_ce": ce, **terms}

        result = run_training(pair, [param_group(pair.student.parameters())], step, source_and_target(data, settings),
                              unsupervised_checkpoint(data, config.checkpoint), settings, epoch_steps(data, settings),
                              log, description=self.name,
                              after_step=lambda: pair.update_teacher(config.ema))
        result.model = pair.teacher
        return result
