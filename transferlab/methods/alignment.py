"""The training recipe shared by unsupervised domain-adaptation methods.

Each step draws a labelled source batch and an unlabelled target batch, runs both through
the network in one forward pass (so batch-norm statistics see both domains) and minimises

    L = CE(source logits, source labels) + trade_off * A(f_s, f_t, z_s, z_t, p)

where ``A`` is the method's alignment loss on features ``f`` / logits ``z`` and ``p`` the
training progress. With ``settings.augment`` both batches are augmented per sample. The
checkpoint is chosen as :mod:`transferlab.methods.checkpointing` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.methods.base import AdaptationData, UnsupervisedConfig
from transferlab.methods.checkpointing import unsupervised_checkpoint
from transferlab.methods.heads import student_from
from transferlab.training.augment import Augmenter
from transferlab.training import (
    AdaptResult,
    BatchStream,
    TrainingStep,
    TrainSettings,
    param_group,
    run_training,
    seed_everything,
    steps_per_epoch,
)


@dataclass
class AlignmentInputs:
    features_s: torch.Tensor
    features_t: torch.Tensor
    logits_s: torch.Tensor
    logits_t: torch.Tensor
    step: TrainingStep


AlignmentLoss = Callable[[AlignmentInputs], dict[str, torch.Tensor]]


def fit_with_alignment(source_model: nn.Module, data: AdaptationData, config: UnsupervisedConfig,
                       settings: TrainSettings, log, description: str, alignment: AlignmentLoss,
                       aux_modules: list[nn.Module] | None = None,
                       source_weights=None) -> AdaptResult:
    """Start from the source network; minimise source CE + ``trade_off`` * alignment.

    ``alignment`` returns a dict whose ``"align"`` entry is the loss, an optional ``"regulariser"``
    added as it is (other entries are logged).
    ``aux_modules`` (a discriminator) are trained with the network at the base learning rate.
    ``source_weights`` (per source-train sample) weight the source cross-entropy.
    """
    seed_everything(settings.seed)
    model = student_from(source_model, new_head=False, seed=settings.seed)
    aux_modules = aux_modules or []
    streams = source_and_target(data, settings, source_weights=source_weights)
    scorer = unsupervised_checkpoint(data, config.checkpoint)
    groups = [param_group(model.parameters())] + [param_group(m.parameters()) for m in aux_modules]

    augment = Augmenter(settings.augmentation)

    def step(s: TrainingStep) -> dict[str, torch.Tensor]:
        xs, ys, *ws = s.batches["source"]
        xt = s.batches["target"][0]
        feats = model.features(augment(torch.cat([xs, xt]), settings.augment))
        logits = model.head(feats)
        ns = xs.shape[0]
        if ws:
            ce = (F.cross_entropy(logits[:ns], ys, reduction="none") * ws[0]).mean()
        else:
            ce = F.cross_entropy(logits[:ns], ys)
        terms = alignment(AlignmentInputs(feats[:ns], feats[ns:], logits[:ns], logits[ns:], s))
        # "regulariser": terms weighted by their own coefficients, not by trade_off (dann's BNM / BSP).
        loss = ce + config.trade_off * terms["align"] + terms.get("regulariser", 0)
        return {"loss": loss, "source_ce": ce, **terms}

    return run_training(model, groups, step, streams, scorer, settings, epoch_steps(data, settings), log,
                        aux_modules=aux_modules, description=description)


def source_and_target(data: AdaptationData, settings: TrainSettings, target_ratio: int = 1,
                      source_weights=None) -> dict[str, BatchStream]:
    """The two seeded streams every method with source data and an unlabelled pool draws from:
    ``source`` (x, y[, w]) at the batch size and ``target`` (x, 0) at ``target_ratio`` times it."""
    return {"source": BatchStream(data.source_train, settings.batch_size, settings.seed, "source",
                                  weights=source_weights),
            "target": BatchStream(data.target_unlabelled, settings.batch_size * target_ratio, settings.seed,
                                  "target-unlabelled")}


def epoch_steps(data: AdaptationData, settings: TrainSettings, target_ratio: int = 1) -> int:
    """One pass over the larger of the source and the pool (the pool at ``target_ratio`` per step)."""
    return steps_per_epoch([len(data.source_train), len(data.target_unlabelled) // target_ratio],
                           settings.batch_size, settings.min_steps_per_epoch, settings.max_steps_per_epoch)
