r"""One hop of gradual self-training (Kumar, Ma & Liang 2020, "Understanding Self-Training for
Gradual Domain Adaptation", ICML; their Algorithm "gradual self-training").

Given the model θ_{t-1} of the previous hop and an unlabelled pool U_t of the next domain,

    ŷᵢ = argmax_k p_θ_{t-1}(k | xᵢ),   cᵢ = max_k p_θ_{t-1}(k | xᵢ)        (hard pseudo-labels, fixed)
    K  = {i : cᵢ ≥ τ} ∩ {the ⌈(1 − ρ)·|U_t|⌉ most confident i}           (confident samples kept)
    θ_t = argmin_θ  L(θ),   L(θ) = −(1/|K|) Σ_{i∈K} log p_θ(ŷᵢ | xᵢ)       (started from θ_{t-1})

ρ (``drop_fraction``) is the share of least-confident samples left out: the paper keeps the 90 %
most confident (ρ = 0.1); τ (``min_confidence``) is an absolute floor, 0 in the paper. The
pseudo-labels are computed once, before the hop trains, with the previous model in eval mode, as
in the paper (self-training with a fixed teacher per step); weight decay is the paper's
regularisation. No label of U_t is ever read: there is nothing to choose a checkpoint with, so
the hop keeps its last epoch after ``settings.epochs`` (the paper's protocol).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from transferlab.data.types import Domain
from transferlab.errors import DataError
from transferlab.training import (
    AdaptResult,
    BatchStream,
    Scorer,
    TrainingStep,
    TrainSettings,
    copy_model,
    param_group,
    predict_logits,
    run_training,
    seed_everything,
    steps_per_epoch,
)
from transferlab.training.loop import LogFn
from transferlab.validators import softmax


class SelfTrainingConfig(BaseModel):
    """Knobs of a gradual self-training hop (defaults: Kumar et al. 2020)."""

    model_config = ConfigDict(extra="forbid")

    drop_fraction: float = Field(0.1, ge=0, lt=1, description="ρ: share of the least confident samples left out")
    min_confidence: float = Field(0.0, ge=0, le=1, description="τ: samples whose top probability is below this "
                                                                "are left out too")


def confident_pseudo_labels(logits, drop_fraction: float, min_confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """(ŷ, kept) for a pool's logits: hard labels and the boolean mask K of the module docstring.
    Ties in confidence are broken by position (a stable sort), so the mask is deterministic."""
    z = np.asarray(logits.detach().cpu() if isinstance(logits, torch.Tensor) else logits, dtype=np.float64)
    p = softmax(z)
    labels, confidence = p.argmax(1).astype(np.int64), p.max(1)
    n_keep = math.ceil((1.0 - drop_fraction) * len(z))
    order = np.argsort(-confidence, kind="stable")
    kept = np.zeros(len(z), dtype=bool)
    kept[order[:n_keep]] = True
    kept &= confidence >= min_confidence
    return labels, kept


def self_training_loss(logits: torch.Tensor, pseudo: torch.Tensor) -> torch.Tensor:
    """L = −(1/|K|) Σ_{i∈K} log p(ŷᵢ | xᵢ) over a batch of kept samples."""
    return F.cross_entropy(logits, pseudo)


def self_train(model: nn.Module, pool: Domain, config: SelfTrainingConfig, settings: TrainSettings,
               log: LogFn | None = None) -> AdaptResult:
    """One hop: pseudo-label ``pool`` with ``model`` (never modified), train a copy on the kept samples."""
    if len(pool) == 0:
        raise DataError(f"intermediate pool '{pool.name}' is empty: nothing to self-train on")
    student = copy_model(model)
    labels, kept = confident_pseudo_labels(predict_logits(student, pool.x), config.drop_fraction,
                                           config.min_confidence)
    if kept.sum() < 2:
        raise DataError(f"self-training on '{pool.name}': fewer than 2 samples reach confidence "
                        f"{config.min_confidence} (lower adapt.self_training.min_confidence)")
    index = np.flatnonzero(kept)
    # The pool's own labels are replaced here, so nothing downstream can read them.
    train = Domain(pool.name, pool.x[index] if not pool.is_lazy else pool.x.subset(index), labels[index],
                   pool.classes)
    seed_everything(settings.seed)
    stream = BatchStream(train, settings.batch_size, settings.seed, "self-training")

    def step(s: TrainingStep):
        x, y = s.batches["self-training"]
        return {"loss": self_training_loss(student(x), y)}

    share = float(kept.mean())
    scorer = Scorer(f"last epoch (gradual self-training's protocol: no labels to choose with); score = share "
                    f"of the pool kept as confident ({share:.2f})", lambda m, device: share, keep="last")
    result = run_training(student, [param_group(student.parameters())], step, {"self-training": stream}, scorer,
                          settings, steps_per_epoch([len(train)], settings.batch_size, settings.min_steps_per_epoch,
                                                    settings.max_steps_per_epoch),
                          log, description=f"self-train on {pool.name}")
    return result
