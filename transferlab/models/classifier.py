"""The classifier shape every method works with.

A :class:`Classifier` is ``blocks`` (an ``nn.ModuleList`` of feature blocks, applied in
order) then ``head`` (one ``nn.Linear``). Keeping that shape fixed is what lets layer
transfer freeze "the first k blocks", the similarity stage measure MMD "at every block",
and adversarial methods hang a discriminator on ``features``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

Arch = Literal["lenet", "resnet18", "mlp"]


class ModelSpec(BaseModel):
    """Everything needed to rebuild a network's architecture (saved beside its weights)."""

    model_config = ConfigDict(extra="forbid")

    arch: Arch = "lenet"
    in_channels: int = Field(1, ge=1)
    image_size: int = Field(28, ge=8)
    input_dim: int | None = Field(None, ge=1, description="feature-vector inputs (arch 'mlp')")
    num_classes: int = Field(10, ge=2)
    hidden: int = Field(500, ge=8, description="width of the penultimate layer (lenet, mlp)")
    progressive: bool = Field(False, description="a progressive network: frozen source column + target column")


class Classifier(nn.Module):
    def __init__(self, spec: ModelSpec, blocks: list[tuple[str, nn.Module]], feature_dim: int):
        super().__init__()
        self.spec = spec
        self.block_names = [name for name, _ in blocks]
        self.blocks = nn.ModuleList(module for _, module in blocks)
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, spec.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def block_outputs(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        """Flattened activations at the input, after every block, and at the logits."""
        out: OrderedDict[str, torch.Tensor] = OrderedDict(input=x.flatten(1))
        for name, block in zip(self.block_names, self.blocks):
            x = block(x)
            out[name] = x.flatten(1)
        out["logits"] = self.head(x.flatten(1))
        return out


def _lenet(spec: ModelSpec) -> Classifier:
    # LeNet as used in the digits domain-adaptation literature (20/50 conv channels, 500 hidden).
    conv1 = nn.Sequential(nn.Conv2d(spec.in_channels, 20, 5), nn.MaxPool2d(2), nn.ReLU())
    conv2 = nn.Sequential(nn.Conv2d(20, 50, 5), nn.Dropout2d(0.5), nn.MaxPool2d(2), nn.ReLU())
    with torch.no_grad():
        probe = torch.zeros(1, spec.in_channels, spec.image_size, spec.image_size)
        flat = conv2(conv1(probe)).flatten(1).shape[1]
    fc = nn.Sequential(nn.Flatten(), nn.Linear(flat, spec.hidden), nn.ReLU(), nn.Dropout(0.5))
    return Classifier(spec, [("conv1", conv1), ("conv2", conv2), ("fc", fc)], spec.hidden)


def _resnet18(spec: ModelSpec) -> Classifier:
    # torchvision's ResNet-18 with random weights (no download) and a stem for small images.
    import torchvision  # costs ~1.5 s of import: only for the architecture that needs it

    net = torchvision.models.resnet18(weights=None)
    stem = nn.Sequential(
        nn.Conv2d(spec.in_channels, 64, 3, 1, 1, bias=False), net.bn1, net.relu
    )
    pool = nn.Sequential(net.avgpool, nn.Flatten())
    blocks = [("stem", stem), ("layer1", net.layer1), ("layer2", net.layer2),
              ("layer3", net.layer3), ("layer4", net.layer4), ("pool", pool)]
    return Classifier(spec, blocks, 512)


def _mlp(spec: ModelSpec) -> Classifier:
    if spec.input_dim is None:
        raise ValueError("arch 'mlp' needs input_dim")
    fc1 = nn.Sequential(nn.Linear(spec.input_dim, spec.hidden), nn.ReLU())
    fc2 = nn.Sequential(nn.Linear(spec.hidden, spec.hidden), nn.ReLU(), nn.Dropout(0.2))
    return Classifier(spec, [("fc1", fc1), ("fc2", fc2)], spec.hidden)


_BUILDERS = {"lenet": _lenet, "resnet18": _resnet18, "mlp": _mlp}


def _build(spec: ModelSpec) -> Classifier:
    if spec.progressive:
        from transferlab.models.progressive import ProgressiveClassifier

        column = spec.model_copy(update={"progressive": False})
        return ProgressiveClassifier(spec, _BUILDERS[spec.arch](column), _BUILDERS[spec.arch](column))
    return _BUILDERS[spec.arch](spec)


def build_model(spec: ModelSpec, seed: int | None = None) -> Classifier:
    """A freshly initialised network; ``seed`` makes the initial weights reproducible.

    Convolution weights are stored channels-last: with them oneDNN picks convolution kernels
    that train LeNet 1.4-1.5x faster on 2 CPU cores (``benchmarks/step_time.py``); values, and
    everything computed from them, keep their logical NCHW order.
    """
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _build(spec)
    else:
        model = _build(spec)
    return model.to(memory_format=torch.channels_last)
