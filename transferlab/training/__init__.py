"""The shared training machinery: settings, the one loop, batching, scoring, freezing.

Pretraining, the baselines and every transfer method train through :func:`run_training`;
none of them copies a loop of its own.
"""

from transferlab.training.batches import BatchStream, holdout_split, steps_per_epoch
from transferlab.training.device import resolve_device
from transferlab.training.evaluation import (
    Scorer,
    accuracy,
    accuracy_scorer,
    information_maximization_scorer,
    last_epoch_scorer,
    predict_logits,
)
from transferlab.training.freezing import freeze, train_mode, trainable
from transferlab.training.loop import (
    TrainingStep,
    copy_model,
    param_group,
    run_training,
    seed_everything,
)
from transferlab.training.result import AdaptResult
from transferlab.training.settings import TrainSettings
from transferlab.training.supervised import train_classifier

__all__ = [
    "AdaptResult", "BatchStream", "Scorer", "TrainSettings", "TrainingStep", "accuracy", "accuracy_scorer",
    "copy_model", "freeze", "holdout_split", "information_maximization_scorer", "last_epoch_scorer",
    "param_group", "predict_logits", "resolve_device", "run_training", "seed_everything", "steps_per_epoch",
    "train_classifier", "train_mode", "trainable",
]
