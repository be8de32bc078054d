"""``adamatch``: FixMatch-style consistency for domain adaptation, in the AdaMatch form (Berthelot,
Roelofs, Sohn, Carlini & Kurakin 2022, "AdaMatch: A Unified Approach to Semi-Supervised Learning
and Domain Adaptation").

Each step draws a labelled source batch (x_s, y) of n samples and an unlabelled target batch x_t
of ``target_ratio`` · n, augments each twice (weak ·¹, strong ·²; :mod:`transferlab.training.augment`)
and passes all four through the network together (logits Z'), the source pair also alone (Z''):

    random logit interpolation   Z_s = λ Z'_s + (1 − λ) Z''_s,   λ ~ U(0, 1) per logit
        (batch-norm sees the target in Z' and not in Z''; a network without batch-norm has
        Z' = Z'', so the second pass is skipped, and its weak target view, which only makes
        pseudo-labels, is passed on its own without a backward graph)
    distribution alignment       p̃_t = normalise(p_t¹ ⊙ E[p_s¹] / E[p_t¹])        (batch means)
    relative threshold           c = τ · E_i[max_k p_s¹(i, k)]
    pseudo-labels                ŷ_i = argmax p̃_t(i),  m_i = 1[max p̃_t(i) ≥ c]   (no gradient)

    L_src = (1/n) Σ_i H(y_i, Z_s¹(i)) + (1/n) Σ_i H(y_i, Z_s²(i))
    L_tgt = (1/n_t) Σ_i m_i · H(ŷ_i, Z_t²(i))
    L     = L_src + μ(p) · trade_off · L_tgt,   μ(p) = 1/2 − cos(min(π, 2π p)) / 2

with p = p_s = softmax, H the cross-entropy and p the training progress (μ rises from 0 to 1 over
the first half of training). τ = 0.9 as in the paper. The paper draws 3 target samples per source
sample; the default here is 1: on this project's 2-core CPU budget the step costs about 2× a dann
step instead of 4× (``benchmarks/step_time.py``), and the same number of steps sees the same
target pool. The checkpoint is label-free (:mod:`transferlab.methods.checkpointing`). With
``ema`` > 0 the network scored and returned is the moving average of the trained weights
(θ' ← α θ' + (1 − α) θ after every step; :mod:`transferlab.methods.ema`); pseudo-labels still
come from the trained network, as in the paper.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from transferlab.methods.alignment import epoch_steps, source_and_target
from transferlab.methods.base import AdaptationData, UnsupervisedConfig, UnsupervisedMethod
from transferlab.methods.checkpointing import unsupervised_checkpoint
from transferlab.methods.ema import StudentTeacher
from transferlab.methods.heads import student_from
from transferlab.methods.registry import register
from transferlab.training import AdaptResult, TrainingStep, param_group, run_training, seed_everything
from transferlab.training.augment import Augmenter


def warmup_weight(progress: float) -> float:
    """μ(p) = 1/2 − cos(min(π, 2π p)) / 2: 0 at the start, 1 from half-way."""
    return 0.5 - math.cos(min(math.pi, 2 * math.pi * progress)) / 2


def pseudo_labels(logits_s_weak: torch.Tensor, logits_t_weak: torch.Tensor, tau: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(ŷ, mask) of the target batch: distribution-aligned predictions above the relative threshold."""
    with torch.no_grad():
        p_s, p_t = F.softmax(logits_s_weak, 1), F.softmax(logits_t_weak, 1)
        aligned = p_t * (p_s.mean(0) / p_t.mean(0))
        aligned = aligned / aligned.sum(1, keepdim=True)
        threshold = tau * p_s.max(1).values.mean()
        confidence, labels = aligned.max(1)
        return labels, (confidence >= threshold).to(logits_t_weak.dtype)


def adamatch_losses(logits_s_weak: torch.Tensor, logits_s_strong: torch.Tensor, y: torch.Tensor,
                    logits_t_weak: torch.Tensor, logits_t_strong: torch.Tensor, tau: float
                    ) -> dict[str, torch.Tensor]:
    """L_src, L_tgt and the share of target samples above the threshold (see module docstring)."""
    labels, mask = pseudo_labels(logits_s_weak, logits_t_weak, tau)
    source = F.cross_entropy(logits_s_weak, y) + F.cross_entropy(logits_s_strong, y)
    target = (F.cross_entropy(logits_t_strong, labels, reduction="none") * mask).mean()
    return {"source_ce": source, "target_ce": target, "mask_rate": mask.mean()}


@contextmanager
def batch_norm_untracked(model: nn.Module) -> Iterator[None]:
    """Batch statistics without updating the running ones (the source-only pass Z'')."""
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) for m in model.modules())


def interpolated_source_logits(model: nn.Module, joint: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Z_s = λ Z' + (1 − λ) Z'' (Z' = ``joint``); Z' itself when the network has no batch-norm."""
    if not has_batch_norm(model):
        return joint
    with batch_norm_untracked(model):
        alone = model(xs)
    lam = torch.rand(joint.shape).to(joint.device)
    return lam * joint + (1 - lam) * alone


class AdaMatchConfig(UnsupervisedConfig):
    trade_off: float = Field(1.0, ge=0, description="weight of the target consistency loss at full warm-up")
    tau: float = Field(0.9, gt=0, le=1, description="relative confidence threshold τ (paper: 0.9)")
    target_ratio: int = Field(1, ge=1, le=8, description="target samples per source sample in a step "
                                                         "(paper: 3; 1 halves the step on a CPU)")
    ema: float = Field(0.0, ge=0, lt=1, description="moving-average rate α of the returned weights "
                                                    "(0: the trained weights themselves)")


@register
class AdaMatch(UnsupervisedMethod):
    name = "adamatch"
    relative_step_cost = 1.26
    description = "weak/strong consistency with distribution-aligned, relatively thresholded pseudo-labels"
    Config = AdaMatchConfig

    def train(self, source_model, data: AdaptationData, config: AdaMatchConfig, settings, log) -> AdaptResult:
        seed_everything(settings.seed)
        model = student_from(source_model, new_head=False, seed=settings.seed)
        pair = StudentTeacher(model, share_statistics=True) if config.ema > 0 else None
        augment = Augmenter(settings.augmentation)

        joint = has_batch_norm(model)

        def step(s: TrainingStep) -> dict[str, torch.Tensor]:
            xs, ys = s.batches["source"]
            xt = s.batches["target"][0]
            pair_s = torch.cat([augment(xs, "weak"), augment(xs, "strong")])
            xt_w, xt_s = augment(xt, "weak"), augment(xt, "strong")
            ns = pair_s.shape[0]
            if joint:
                logits = model(torch.cat([pair_s, xt_w, xt_s]))
                zs = interpolated_source_logits(model, logits[:ns], pair_s)
                zt_w, zt_s = logits[ns:].chunk(2)
            else:
                # Without batch-norm a sample's logits do not depend on its batch, and the weak target
                # view only makes pseudo-labels: passed without a backward graph, the step costs ~15 % less.
                with torch.no_grad():
                    zt_w = model(xt_w)
                zs, zt_s = model(torch.cat([pair_s, xt_s])).split([ns, xt_s.shape[0]])
            zs_w, zs_s = zs.chunk(2)
            terms = adamatch_losses(zs_w, zs_s, ys, zt_w, zt_s, config.tau)
            weight = warmup_weight(s.progress) * config.trade_off
            return {"loss": terms["source_ce"] + weight * terms["target_ce"], **terms}

        scored, after_step = (model, None) if pair is None else (pair, lambda: pair.update_teacher(config.ema))
        result = run_training(scored, [param_group(model.parameters())], step,
                              source_and_target(data, settings, config.target_ratio),
                              unsupervised_checkpoint(data, config.checkpoint), settings,
                              epoch_steps(data, settings, config.target_ratio), log, description=self.name,
                              after_step=after_step)
        if pair is not None:
            result.model = pair.teacher
        return result
