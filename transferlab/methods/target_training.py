"""The training recipe shared by methods that learn from the labelled target samples.

Cross-entropy on the labelled target (minus the held-out part that chooses the checkpoint,
see :mod:`transferlab.methods.checkpointing`), plus whatever extra term a method adds
(e.g. L2-SP's pull towards the source weights). ``settings.augment`` augments the labelled batch.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from transferlab.methods.base import AdaptationData
from transferlab.methods.checkpointing import labelled_target_checkpoint
from transferlab.training.augment import Augmenter
from transferlab.training import (
    AdaptResult,
    BatchStream,
    TrainingStep,
    TrainSettings,
    run_training,
    seed_everything,
    steps_per_epoch,
)

ExtraLoss = Callable[[nn.Module, TrainingStep], dict[str, torch.Tensor]]


def fit_on_labelled_target(model: nn.Module, groups: list[dict], data: AdaptationData, settings: TrainSettings,
                           log, description: str, extra_loss: ExtraLoss | None = None,
                           aux_modules: list[nn.Module] | None = None) -> AdaptResult:
    """Minimise CE on the labelled target (+ ``extra_loss``); checkpoint on held-out labels."""
    seed_everything(settings.seed)
    train, scorer = labelled_target_checkpoint(data, settings)
    stream = BatchStream(train, settings.batch_size, settings.seed, "target-labelled")
    augment = Augmenter(settings.augmentation)

    def step(s: TrainingStep) -> dict[str, torch.Tensor]:
        x, y = s.batches["target"]
        ce = F.cross_entropy(model(augment(x, settings.augment)), y)
        out = {"loss": ce, "target_ce": ce}
        if extra_loss is not None:
            extra = extra_loss(model, s)
            out["loss"] = ce + sum(extra.values())
            out.update(extra)
        return out

    n = steps_per_epoch([len(train)], settings.batch_size, settings.min_steps_per_epoch, settings.max_steps_per_epoch)
    return run_training(model, groups, step, {"target": stream}, scorer, settings, n, log,
                        aux_modules=aux_modules, description=description)
