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
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

# Built-in architectures, then torchvision's (their exact layer layout, so that a state dict a user
# already has loads into them; see transferlab.models.backbones).
BUILTIN_ARCHS = ("lenet", "lenet-bn", "resnet18", "mlp")
TORCHVISION_ARCHS = ("tv-resnet18", "tv-resnet34", "tv-resnet50", "tv-mobilenet_v3_small",
                     "tv-mobilenet_v3_large", "tv-efficientnet_b0")
Arch = Literal["lenet", "lenet-bn", "resnet18", "mlp", "tv-resnet18", "tv-resnet34", "tv-resnet50",
               "tv-mobilenet_v3_small", "tv-mobilenet_v3_large", "tv-efficientnet_b0"]


class ModelSpec(BaseModel):
    """Everything needed to rebuild a network's architecture (saved beside its weights)."""

    model_config = ConfigDict(extra="forbid")

    arch: Arch = "lenet"
    in_channels: int = Field(1, ge=1)
    image_size: int = Field(28, ge=8)
    input_dim: int | None = Field(None, ge=1, description="feature-vector inputs (arch 'mlp')")
    num_classes: int = Field(10, ge=2)
    hidden: int = Field(500, ge=8, description="width of the penultimate layer (lenet, mlp; lenet-bn: its "
                                               "batch-normed bottleneck, 256 in SHOT)")
    progressive: bool = Field(False, description="a progressive network: frozen source column + target column")
    classes: list[str] | None = Field(None, description="names of the output classes, in the head's order")
    mean: list[float] | None = Field(None, description="per-channel mean the network's inputs are normalised by")
    std: list[float] | None = Field(None, description="per-channel standard deviation of that normalisation")
    attribute_block: int | None = Field(None, ge=1, description="DAP: a last block of this many attribute "
                                                               "classifiers (AttributeLogProbs) under the head")
    attribute_head: int | None = Field(None, ge=1, description="attribute-supervised pretraining: an auxiliary "
                                                              "linear head of this many attribute logits on the "
                                                              "features, beside the class head (not in forward)")

    @model_validator(mode="after")
    def _consistent(self) -> "ModelSpec":
        if self.classes is not None and len(self.classes) != self.num_classes:
            raise ValueError(f"{len(self.classes)} class names for a head of {self.num_classes} outputs")
        if (self.mean is None) != (self.std is None):
            raise ValueError("mean and std go together: give both or neither")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) != self.in_channels:
                raise ValueError(f"{name} has {len(values)} values for {self.in_channels} input channels")
        if self.std is not None and min(self.std) <= 0:
            raise ValueError("std values must be positive")
        if self.attribute_block is not None and self.progressive:
            raise ValueError("a progressive network takes no attribute block")
        return self


class InputAdapter(nn.Module):
    """Brings images in [0, 1] of any size and grey/RGB to what the network expects: its channel
    count (grey repeated, RGB to luminance), its side length (antialiased bilinear) and the
    normalisation its spec records. A no-op when the data already match, so the pipeline keeps one
    data format for every model, and an imported network sees its inputs as it was trained on them."""

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.channels = spec.in_channels
        self.size = spec.image_size if spec.input_dim is None else None
        if spec.mean is not None:
            self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1), persistent=False)
        else:
            self.mean = self.std = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            return x
        c = x.shape[1]
        if c == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        elif c == 3 and self.channels == 1:
            x = (x * _LUMA.to(x.device, x.dtype)).sum(dim=1, keepdim=True)
        if self.size is not None and x.shape[-2:] != (self.size, self.size):
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                          antialias=x.shape[-1] > self.size)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x


_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


class Classifier(nn.Module):
    def __init__(self, spec: ModelSpec, blocks: list[tuple[str, nn.Module]], feature_dim: int):
        super().__init__()
        self.spec = spec
        self.block_names = [name for name, _ in blocks]
        self.blocks = nn.ModuleList(module for _, module in blocks)
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, spec.num_classes)
        self.adapter = InputAdapter(spec)

    @property
    def classes(self) -> tuple[str, ...]:
        """The names of the outputs. A model saved before names were recorded had digit-style integer
        names ("0".."n-1"), which is what transferlab's readers give integer labels."""
        names = self.spec.classes
        return tuple(names) if names is not None else tuple(str(i) for i in range(self.spec.num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.adapter(x)
        for block in self.blocks:
            x = block(x)
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def prefix(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """The input through the adapter and the first ``k`` blocks (their own output shape)."""
        x = self.adapter(x)
        for block in self.blocks[:k]:
            x = block(x)
        return x

    def forward_from(self, k: int, h: torch.Tensor) -> torch.Tensor:
        """Logits from the output ``h`` of :meth:`prefix` ``(k, x)``: ``forward(x) == forward_from(k, prefix(k, x))``."""
        for block in self.blocks[k:]:
            h = block(h)
        return self.head(h.flatten(1))

    def block_outputs(self, x: torch.Tensor, flatten: bool = True) -> "OrderedDict[str, torch.Tensor]":
        """Activations at the input (as given, before the adapter), after every block, and at the
        logits; flattened to (N, D), or with ``flatten=False`` in their own shape (feature maps)."""
        shape = (lambda t: t.flatten(1)) if flatten else (lambda t: t)
        out: OrderedDict[str, torch.Tensor] = OrderedDict(input=shape(x))
        x = self.adapter(x)
        for name, block in zip(self.block_names, self.blocks):
            x = block(x)
            out[name] = shape(x)
        out["logits"] = self.head(x.flatten(1))
        return out


class AttributeLogProbs(nn.Module):
    """The attribute layer of direct attribute prediction (DAP, Lampert et al. 2014): one logistic
    classifier per attribute on the features f, z = W f + b, output

        [log p(a_1 = 1 | x), ..., log p(a_M = 1 | x), log p(a_1 = 0 | x), ..., log p(a_M = 0 | x)]
        = [log σ(z), log σ(−z)],

    so that a class's DAP log-score is a *linear* head on it (transferlab.methods.dap)."""

    def __init__(self, in_features: int, n_attributes: int):
        super().__init__()
        self.linear = nn.Linear(in_features, n_attributes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x.flatten(1))
        return torch.cat([nn.functional.logsigmoid(z), nn.functional.logsigmoid(-z)], dim=1)


def attach_attribute_block(model: Classifier, n_attributes: int) -> Classifier:
    """``model`` with an :class:`AttributeLogProbs` block appended and a head of 2·M inputs (in place)."""
    model.blocks.append(AttributeLogProbs(model.feature_dim, n_attributes))
    model.block_names.append("attributes")
    model.feature_dim = 2 * n_attributes
    model.head = nn.Linear(2 * n_attributes, model.head.out_features)
    return model


def _lenet_convs(spec: ModelSpec) -> tuple[nn.Module, nn.Module, int]:
    """LeNet's two conv blocks (20 and 50 channels) and the length of their flattened output."""
    conv1 = nn.Sequential(nn.Conv2d(spec.in_channels, 20, 5), nn.MaxPool2d(2), nn.ReLU())
    conv2 = nn.Sequential(nn.Conv2d(20, 50, 5), nn.Dropout2d(0.5), nn.MaxPool2d(2), nn.ReLU())
    with torch.no_grad():
        probe = torch.zeros(1, spec.in_channels, spec.image_size, spec.image_size)
        flat = conv2(conv1(probe)).flatten(1).shape[1]
    return conv1, conv2, flat


def _lenet(spec: ModelSpec) -> Classifier:
    # LeNet as used in the digits domain-adaptation literature (20/50 conv channels, 500 hidden).
    conv1, conv2, flat = _lenet_convs(spec)
    fc = nn.Sequential(nn.Flatten(), nn.Linear(flat, spec.hidden), nn.ReLU(), nn.Dropout(0.5))
    return Classifier(spec, [("conv1", conv1), ("conv2", conv2), ("fc", fc)], spec.hidden)


def _lenet_bn(spec: ModelSpec) -> Classifier:
    # SHOT's digit network (Liang et al. 2020; its reference code's LeNetBase + "bn" bottleneck):
    # LeNet's conv blocks, then a bottleneck block linear -> batch norm -> dropout (no ReLU) of
    # ``hidden`` units (SHOT: 256) under the linear head. Its batch norm is what tent adapts.
    conv1, conv2, flat = _lenet_convs(spec)
    bottleneck = nn.Sequential(nn.Flatten(), nn.Linear(flat, spec.hidden), nn.BatchNorm1d(spec.hidden),
                               nn.Dropout(0.5))
    return Classifier(spec, [("conv1", conv1), ("conv2", conv2), ("bottleneck", bottleneck)], spec.hidden)


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


_BUILDERS = {"lenet": _lenet, "lenet-bn": _lenet_bn, "resnet18": _resnet18, "mlp": _mlp}


def _build(spec: ModelSpec) -> Classifier:
    # A progressive network's columns carry it (built from this spec); an attribute block is built on top.
    if spec.attribute_head and not spec.progressive and not spec.attribute_block:
        model = _build(spec.model_copy(update={"attribute_head": None}))
        model.spec = spec
        # Beside the class head, on the same features; trained by train_classifier's attribute loss.
        model.attribute_head = nn.Linear(model.feature_dim, spec.attribute_head)
        return model
    if spec.attribute_block:
        model = attach_attribute_block(_build(spec.model_copy(update={"attribute_block": None})), spec.attribute_block)
        model.spec = spec
        return model
    if spec.arch in TORCHVISION_ARCHS and not spec.progressive:
        from transferlab.models.backbones import build_torchvision

        return build_torchvision(spec)
    if spec.progressive:
        from transferlab.models.progressive import ProgressiveClassifier

        column = spec.model_copy(update={"progressive": False})
        return ProgressiveClassifier(spec, _build(column), _build(column))
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
