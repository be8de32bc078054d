"""Small network pieces methods share: fresh heads, copies of the source network.

On the task-transfer road the source head's classes are not the target's, so a method that
keeps "the source head" keeps nothing it could use: :func:`student_from` then always gives the
copy a fresh head of the target's width, and the spec (class count and names) follows it.
"""

from __future__ import annotations

import torch
from torch import nn

from transferlab.methods.base import AdaptationData
from transferlab.training import copy_model


def fresh_head(model: nn.Module, seed: int, num_classes: int | None = None) -> nn.Linear:
    """A newly initialised linear head on ``model``'s features, ``num_classes`` wide (default: the
    current head's width), seeded."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(model.head.in_features, num_classes or model.head.out_features)


def target_spec(spec, data: AdaptationData):
    """``spec`` with the target's classes as the output classes."""
    return spec.model_copy(update={"num_classes": data.n_target_classes, "classes": list(data.target_classes)})


def needs_new_head(source_model: nn.Module, data: AdaptationData) -> bool:
    """True when the source head cannot serve the target: its classes are not the target's."""
    classes = getattr(source_model.spec, "classes", None)
    if classes is not None:
        return tuple(classes) != tuple(data.target_classes)
    return tuple(data.source_classes) != tuple(data.target_classes)


def student_from(source_model: nn.Module, new_head: bool, seed: int, data: AdaptationData | None = None) -> nn.Module:
    """A copy of the source network, trainable, optionally with a fresh head; given ``data``, a
    fresh head of the target's classes whenever the source head's classes are not the target's."""
    model = copy_model(source_model)
    for p in model.parameters():
        p.requires_grad_(True)
    if data is not None and needs_new_head(source_model, data):
        model.head = fresh_head(model, seed, data.n_target_classes)
        model.spec = target_spec(model.spec, data)
    elif new_head:
        model.head = fresh_head(model, seed)
    if data is not None and model.spec.classes is None:
        model.spec = target_spec(model.spec, data)
    return model


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in model.named_parameters() if not n.startswith("head.")]
