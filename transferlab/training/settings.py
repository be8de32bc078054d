"""The knobs of the shared training loop, common to pretraining, baselines and every method."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from transferlab.seed import Seed
from transferlab.training.augment import AugmentSpec, Strength


class TrainSettings(BaseModel):
    """How long and how to train; what a method trains is its own business.

    An *epoch* is one pass over the largest data set the run draws batches from, at least
    ``min_steps_per_epoch`` optimiser steps (so a 100-sample labelled target still gets a
    meaningful number of updates between checkpoints) and at most ``max_steps_per_epoch``.
    Early stopping ends the run after ``patience`` epochs without a better checkpoint score.
    """

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(5e-4, ge=0)
    patience: int = Field(3, ge=1)
    max_steps_per_epoch: int | None = Field(None, ge=1)
    lr_schedule: Literal["constant", "annealed"] = Field(
        "constant",
        description="annealed: lr × (1 + 10 p)^-0.75 over training progress p, the schedule of the DANN paper "
                    "(Ganin et al. 2016) that DAN and CDAN also train with",
    )
    min_steps_per_epoch: int = Field(20, ge=1)
    label_smoothing: float = Field(
        0.0, ge=0, lt=1,
        description="supervised training (train_classifier: the pretrain stage) minimises cross-entropy to "
                    "(1 - ε) one-hot + ε / K uniform targets; 0: plain cross-entropy. SHOT trains its source "
                    "model with 0.1 (Liang et al. 2020); methods' own losses ignore it",
    )
    augment: Strength = Field(
        "none",
        description="per-sample augmentation of the inputs of supervised losses (pretraining, the source and "
                    "target batches of the alignment methods, the labelled target of fine-tuning): none | weak | "
                    "strong (transferlab.training.augment); the consistency methods (adamatch, mean-teacher) "
                    "always use both strengths on their own terms",
    )
    augmentation: AugmentSpec = Field(default_factory=AugmentSpec,
                                      description="the weak and strong pipelines' knobs")
    epoch_limit: float | None = Field(
        None, gt=0,
        description="stop after this many epochs' worth of optimiser steps since the run began, fractions "
                    "allowed (at most ``epochs``; at least one step; a continued run counts its earlier part): "
                    "how trial-mode selection gives each short trial exactly its share of the budget",
    )
    schedule_epochs: float | None = Field(
        None, gt=0,
        description="lay the lr and warm-up schedules out over this many epochs instead of the run's own "
                    "length (capped at ``epochs``): a trial stopped by ``epoch_limit`` is then the first "
                    "stretch of that longer run, and continuing it later follows the same schedule",
    )
    attribute_weight: float = Field(
        1.0, ge=0,
        description="supervised training with class attributes (train_classifier given ``class_attributes``: "
                    "the pretrain stage when data.attributes is set): weight β of the attribute BCE beside the "
                    "cross-entropy; 0 trains no attribute head",
    )
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    seed: Seed = 0
    holdout_fraction: float = Field(
        0.2, gt=0, lt=1,
        description="share of each class of the labelled target held out to choose the checkpoint",
    )
