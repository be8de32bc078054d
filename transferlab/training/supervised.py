"""Plain supervised training with early stopping on validation accuracy."""

from __future__ import annotations

import torch.nn.functional as F

from transferlab.data.types import Domain
from transferlab.errors import DataError
from transferlab.training.augment import Augmenter
from transferlab.training.batches import BatchStream, steps_per_epoch
from transferlab.training.evaluation import accuracy_scorer
from transferlab.training.loop import LogFn, TrainingStep, param_group, run_training, seed_everything
from transferlab.training.result import AdaptResult
from transferlab.training.settings import TrainSettings


def train_classifier(model, train: Domain, val: Domain, settings: TrainSettings,
                     log: LogFn | None = None) -> AdaptResult:
    """Minimise cross-entropy on ``train``; keep the epoch with the best accuracy on ``val``.

    With ``settings.label_smoothing`` ε > 0 the targets are smoothed: for K classes,
    L = −Σ_k q_k log p_k with q = (1 − ε) one-hot(y) + ε / K (PyTorch's ``label_smoothing``).
    ``settings.augment`` augments each batch per sample (SHOT's source recipe trains with random
    crops). Trains ``model`` in place (pass a fresh one) and returns it at its best epoch.
    """
    if len(train) == 0:
        raise DataError(f"training domain '{train.name}' is empty")
    if len(val) == 0:
        raise DataError(f"validation domain '{val.name}' is empty: it is needed to choose the checkpoint")
    seed_everything(settings.seed)
    stream = BatchStream(train, settings.batch_size, settings.seed, "train")
    augment = Augmenter(settings.augmentation)

    def step(s: TrainingStep):
        x, y = s.batches["train"]
        x = augment(x, settings.augment)
        return {"loss": F.cross_entropy(model(x), y, label_smoothing=settings.label_smoothing)}

    return run_training(
        model, [param_group(model.parameters())], step, {"train": stream},
        accuracy_scorer(val, f"accuracy on '{val.name}' (validation)"), settings,
        steps_per_epoch([len(train)], settings.batch_size, settings.min_steps_per_epoch,
                        settings.max_steps_per_epoch),
        log, description="train")
