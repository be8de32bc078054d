"""Choosing the torch device from the settings' 'cpu' | 'cuda' | 'auto'."""

from __future__ import annotations

import torch

from transferlab.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when available; asking for 'cuda' without a GPU is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but no CUDA GPU is available (use 'cpu' or 'auto')")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"device must be 'cpu', 'cuda' or 'auto', not '{name}'")
    return torch.device(name)
