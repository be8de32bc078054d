"""Which data chooses a method's checkpoint (never the target test split).

- Methods trained on target labels hold out ``settings.holdout_fraction`` of each class of the
  labelled target (stratified, seeded) and keep the epoch with the best held-out accuracy.
  With fewer than 3 labels in some class nothing can be held out honestly: they train on all
  labels for the full number of epochs and keep the last one (the criterion says so).
- Unsupervised methods do not train on target labels, so when some exist they all serve as
  the checkpoint set; without any, a label-free criterion: information maximisation of the
  predictions on unlabelled target inputs (or source-validation accuracy if configured).
"""

from __future__ import annotations

from transferlab.data.types import Domain
from transferlab.errors import MethodRequirementError
from transferlab.methods.base import AdaptationData
from transferlab.training import (
    Scorer,
    TrainSettings,
    accuracy_scorer,
    holdout_split,
    information_maximization_scorer,
    last_epoch_scorer,
)


def labelled_target_checkpoint(data: AdaptationData, settings: TrainSettings) -> tuple[Domain, Scorer]:
    """(labelled target to train on, scorer on the held-out rest)."""
    train, held = holdout_split(data.target_labelled, settings.holdout_fraction, settings.seed)
    if held is None:
        return train, last_epoch_scorer(train, "too few target labels per class to hold any out")
    return train, accuracy_scorer(
        held, f"accuracy on {len(held)} held-out labelled target samples ({settings.holdout_fraction:.0%} per class)")


def unsupervised_checkpoint(data: AdaptationData, choice: str) -> Scorer:
    """The scorer an unsupervised method keeps its checkpoint with (see module docstring)."""
    if choice == "auto":
        choice = "target-labelled" if data.n_target_labels else "information-maximisation"
    if choice == "target-labelled":
        if not data.n_target_labels:
            raise MethodRequirementError(
                "checkpoint 'target-labelled' was requested but there are no labelled target samples")
        return accuracy_scorer(data.target_labelled,
                               f"accuracy on the {data.n_target_labels} labelled target samples (not trained on)")
    if choice == "source-val-accuracy":
        return accuracy_scorer(data.source_val, "source validation accuracy")
    return information_maximization_scorer(data.target_unlabelled.x)
