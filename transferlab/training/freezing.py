"""Freezing parts of a network so that they stay bit-identical during training."""

from __future__ import annotations

from torch import nn

_FROZEN = "_transferlab_frozen"


def freeze(module: nn.Module) -> nn.Module:
    """No gradients for ``module``'s parameters, and eval mode whenever the loop trains.

    Eval mode matters as much as ``requires_grad=False``: batch-norm running statistics are
    buffers that a forward pass in train mode would update, and dropout in a frozen block
    would only add noise to features that can no longer adapt to it.
    """
    for p in module.parameters():
        p.requires_grad_(False)
    setattr(module, _FROZEN, True)
    module.eval()
    return module


def train_mode(model: nn.Module) -> None:
    """``model.train()``, then put every frozen submodule back in eval mode."""
    model.train()
    for sub in model.modules():
        if getattr(sub, _FROZEN, False):
            sub.eval()


def trainable(module: nn.Module) -> list[nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def frozen_prefix(model: nn.Module) -> int:
    """How many of ``model.blocks``, from the first, are frozen (all when the container itself is)."""
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        return 0
    if getattr(blocks, _FROZEN, False):
        return len(blocks)
    k = 0
    while k < len(blocks) and getattr(blocks[k], _FROZEN, False):
        k += 1
    return k
