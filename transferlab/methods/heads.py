"""Small network pieces methods share: fresh heads, copies of the source network."""

from __future__ import annotations

import torch
from torch import nn

from transferlab.training import copy_model


def fresh_head(model: nn.Module, seed: int) -> nn.Linear:
    """A newly initialised linear head with the shape of ``model.head`` (seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(model.head.in_features, model.head.out_features)


def student_from(source_model: nn.Module, new_head: bool, seed: int) -> nn.Module:
    """A copy of the source network, optionally with a fresh head."""
    model = copy_model(source_model)
    for p in model.parameters():
        p.requires_grad_(True)
    if new_head:
        model.head = fresh_head(model, seed)
    return model


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in model.named_parameters() if not n.startswith("head.")]
