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

from transferlab.data.types import Domain
from transferlab.methods.base import AdaptationData
from transferlab.methods.checkpointing import labelled_target_checkpoint
from transferlab.models.classifier import Classifier
from transferlab.models.features import CACHE, CACHED_PREFIX
from transferlab.training.augment import Augmenter
from transferlab.training.device import resolve_device
from transferlab.training.freezing import frozen_prefix
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
    k = _cacheable_prefix(model, settings)
    if k:  # the frozen blocks' output, computed once (and shared with every other run that needs it)
        features = CACHE.prefix(model, k, train.x, resolve_device(settings.device)).numpy()
        train = Domain(train.name, features, train.y, train.classes)
    stream = BatchStream(train, settings.batch_size, settings.seed, "target-labelled")
    augment = Augmenter(settings.augmentation)
    forward = (lambda x: model.forward_from(k, x)) if k else (lambda x: model(augment(x, settings.augment)))

    def step(s: TrainingStep) -> dict[str, torch.Tensor]:
        x, y = s.batches["target"]
        ce = F.cross_entropy(forward(x), y)
        out = {"loss": ce, "target_ce": ce}
        if extra_loss is not None:
            extra = extra_loss(model, s)
            out["loss"] = ce + sum(extra.values())
            out.update(extra)
        return out

    n = steps_per_epoch([len(train)], settings.batch_size, settings.min_steps_per_epoch, settings.max_steps_per_epoch)
    setattr(model, CACHED_PREFIX, k)  # the held-out scoring reads the frozen blocks' features from the cache too
    try:
        result = run_training(model, groups, step, {"target": stream}, scorer, settings, n, log,
                              aux_modules=aux_modules, description=description)
    finally:
        delattr(model, CACHED_PREFIX)
    if hasattr(result.model, CACHED_PREFIX):  # a checkpoint copied during training carries the mark
        delattr(result.model, CACHED_PREFIX)
    return result


def _cacheable_prefix(model: nn.Module, settings: TrainSettings) -> int:
    """How many leading blocks train on cached features: the frozen ones, unless the batches are
    augmented (each epoch then sees new inputs) or the network is not a plain :class:`Classifier`."""
    if settings.augment != "none" or type(model) is not Classifier:
        return 0
    if any(p.requires_grad for p in model.adapter.parameters()):
        return 0
    return frozen_prefix(model)
