"""Torchvision networks in the :class:`Classifier` shape, keeping torchvision's own weights layout.

A user's ResNet / MobileNetV3 / EfficientNet state dict is keyed by torchvision's module names
(``layer1.0.conv1.weight``), while every method here needs named feature ``blocks`` and one
linear ``head``. So the torchvision network is built as is and its own submodules (shared, never
copied) are grouped into blocks: the wrapper computes exactly what torchvision computes, a
torchvision state dict loads into it through the torchvision module, and
:func:`torchvision_state_dict` gives the weights back under torchvision's names.

Blocks follow the networks' resolution stages, so "the first k blocks" and "MMD at every block"
mean the same thing across architectures: ``stem`` (output stride 2 or 4), ``stage1``/``layer1``
(4), ... ``stage4``/``layer4`` (32), then pooling (and MobileNetV3's ``pre_logits`` layer).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from transferlab.errors import DataError
from transferlab.models.classifier import TORCHVISION_ARCHS, Classifier, ModelSpec

PREFIX = "tv-"

# (block name, first index, end index) into ``net.features``, split where the resolution halves.
_FEATURE_STAGES: dict[str, tuple[tuple[str, int, int], ...]] = {
    "mobilenet_v3_small": (("stem", 0, 1), ("stage1", 1, 2), ("stage2", 2, 4), ("stage3", 4, 9),
                           ("stage4", 9, 12), ("last_conv", 12, 13)),
    "mobilenet_v3_large": (("stem", 0, 2), ("stage1", 2, 4), ("stage2", 4, 7), ("stage3", 7, 13),
                           ("stage4", 13, 16), ("last_conv", 16, 17)),
    "efficientnet_b0": (("stem", 0, 2), ("stage1", 2, 3), ("stage2", 3, 4), ("stage3", 4, 6),
                        ("stage4", 6, 8), ("last_conv", 8, 9)),
}

# Where each family keeps its final linear layer, under torchvision's key names.
HEAD_KEYS = {"resnet": "fc", "mobilenet_v3": "classifier.3", "efficientnet": "classifier.1"}


def torchvision_name(arch: str) -> str:
    """``"tv-resnet18"`` -> ``"resnet18"`` (the name of torchvision's builder)."""
    return arch.removeprefix(PREFIX)


def head_key(name: str) -> str:
    """The state-dict prefix of torchvision ``name``'s final ``nn.Linear`` (``fc`` for resnets)."""
    for family, key in HEAD_KEYS.items():
        if name.startswith(family):
            return key
    raise ValueError(f"no torchvision head known for {name!r}")


def _check_spec(spec: ModelSpec) -> str:
    if spec.arch not in TORCHVISION_ARCHS or spec.progressive:
        raise ValueError(f"arch {spec.arch!r} (progressive={spec.progressive}) is not a plain torchvision network")
    if spec.in_channels != 3:
        # The input adapter turns grey images into RGB; the stem's weights expect 3 channels.
        raise ValueError(f"torchvision {spec.arch} takes 3 input channels, not {spec.in_channels}")
    return torchvision_name(spec.arch)


def _torchvision_net(spec: ModelSpec) -> nn.Module:
    import torchvision  # ~1.5 s of import: only for the architectures that need it

    return getattr(torchvision.models, _check_spec(spec))(weights=None, num_classes=spec.num_classes)


def _wrap(spec: ModelSpec, net: nn.Module) -> Classifier:
    """``net``'s own submodules as named blocks plus its final linear layer as the head."""
    name = torchvision_name(spec.arch)
    if name.startswith("resnet"):
        blocks = [("stem", nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)),
                  ("layer1", net.layer1), ("layer2", net.layer2), ("layer3", net.layer3), ("layer4", net.layer4),
                  ("pool", nn.Sequential(net.avgpool, nn.Flatten()))]
        head = net.fc
    else:
        stages = _FEATURE_STAGES[name]
        bounds = [0] + [end for _, _, end in stages]
        if [start for _, start, _ in stages] != bounds[:-1] or bounds[-1] != len(net.features):
            # A torchvision release that regrouped its layers: better no model than one missing a layer.
            raise RuntimeError(f"the blocks of {name} do not tile its {len(net.features)} feature modules")
        blocks = [(block, nn.Sequential(*net.features[start:end])) for block, start, end in stages]
        if name.startswith("mobilenet_v3"):
            blocks += [("pool", nn.Sequential(net.avgpool, nn.Flatten())),
                       ("pre_logits", nn.Sequential(*net.classifier[:3]))]
            head = net.classifier[3]
        else:
            blocks += [("pool", nn.Sequential(net.avgpool, nn.Flatten(), net.classifier[0]))]
            head = net.classifier[1]
    model = Classifier(spec, blocks, head.in_features)
    # Classifier makes a fresh head; torchvision's own keeps the weights' meaning (and its keys).
    model.head = head
    return model


def build_torchvision(spec: ModelSpec) -> Classifier:
    """A randomly initialised torchvision network of ``spec.arch`` ("tv-resnet18", ...) as a Classifier."""
    return _wrap(spec, _torchvision_net(spec))


@lru_cache(maxsize=32)
def _key_map(arch: str, num_classes: int) -> dict[str, str]:
    """Our state-dict key -> torchvision's: matched by tensor identity on a meta-device build (no
    memory, no initialisation cost), so it follows the wrapping exactly. The layout depends on the
    architecture and head width only, not on image size, class names or normalisation."""
    spec = ModelSpec(arch=arch, in_channels=3, num_classes=num_classes)
    with torch.device("meta"):
        net = _torchvision_net(spec)
        model = _wrap(spec, net)
    theirs = {id(t): key for key, t in net.state_dict(keep_vars=True).items()}
    ours = model.state_dict(keep_vars=True)
    mapping = {key: theirs[id(t)] for key, t in ours.items() if id(t) in theirs}
    if len(mapping) != len(ours) or len(mapping) != len(theirs):
        raise RuntimeError(f"the {arch} wrapper does not cover torchvision's state dict one to one")
    return mapping


def torchvision_state_dict(model: Classifier) -> dict[str, torch.Tensor]:
    """``model``'s weights under torchvision's key names: ``torchvision.models.<arch>(num_classes=n)``
    loads them with ``strict=True``."""
    _check_spec(model.spec)
    mapping = _key_map(model.spec.arch, model.spec.num_classes)
    return {mapping[key]: value.detach() for key, value in model.state_dict().items()}


def _more(keys: list[str]) -> str:
    return f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""


def _first_mismatch(net: nn.Module, state_dict: dict, name: str) -> str | None:
    """The first reason ``state_dict`` would not load strictly into ``net``, as a sentence's tail."""
    expected = net.state_dict()
    # BatchNorm fills a missing counter itself (older torchvision files lack it): not a mismatch.
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    if missing:
        return f"key {missing[0]!r} of torchvision {name} is missing{_more(missing)}"
    if unexpected:
        return f"it has key {unexpected[0]!r}, which torchvision {name} does not{_more(unexpected)}"
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            return f"key {key!r} holds a {type(value).__name__}, not a tensor"
        if value.shape != expected[key].shape:
            return (f"key {key!r} has shape {tuple(value.shape)} where torchvision {name} expects "
                    f"{tuple(expected[key].shape)}")
    return None


def load_torchvision_weights(spec: ModelSpec, state_dict: dict[str, torch.Tensor], where: str) -> Classifier:
    """A Classifier of ``spec.arch`` whose torchvision network loaded ``state_dict`` strictly;
    a state dict that does not fit is a one-line DataError naming ``where`` and the first bad key."""
    with torch.random.fork_rng(devices=[]):  # initial weights about to be overwritten: leave the caller's RNG be
        net = _torchvision_net(spec)
    name = torchvision_name(spec.arch)
    problem = _first_mismatch(net, state_dict, name)
    if problem is not None:
        raise DataError(f"{where} does not hold torchvision {name} weights: {problem}")
    net.load_state_dict(state_dict, strict=True)
    return _wrap(spec, net)
