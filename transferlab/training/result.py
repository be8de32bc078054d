"""What every training run returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn


@dataclass
class AdaptResult:
    """The trained network (at its chosen checkpoint, on the CPU, in eval mode) and its record.

    ``history`` holds one dict per epoch (mean training losses, the checkpoint score, ...);
    ``checkpoint_criterion`` names what chose ``best_epoch`` (1-based; 0 means the model
    given to the method was returned untrained) with the score ``best_score``.
    """

    model: nn.Module
    history: list[dict] = field(default_factory=list)
    checkpoint_criterion: str = ""
    best_epoch: int = 0
    best_score: float = float("nan")
