"""Torchvision networks wrapped as Classifiers compute what torchvision computes, for every arch.

Each arch is built once with random weights and BatchNorm statistics of its own (see
``randomised``), saved as a plain torch state dict and imported; inputs are 32x32 so the heavy
nets stay cheap.
"""

import copy
from dataclasses import dataclass

import pytest
import torch
import torchvision
from torch import nn

from transferlab.models import (Classifier, ModelSpec, build_model, import_torchvision, load_model, save_model,
                                torchvision_state_dict)
from transferlab.models.classifier import TORCHVISION_ARCHS

ARCHS = [arch.removeprefix("tv-") for arch in TORCHVISION_ARCHS]
STAGES = ["stem", "stage1", "stage2", "stage3", "stage4", "last_conv", "pool"]
BLOCKS = {"resnet18": ["stem", "layer1", "layer2", "layer3", "layer4", "pool"],
          "mobilenet_v3_small": STAGES + ["pre_logits"], "mobilenet_v3_large": STAGES + ["pre_logits"],
          "efficientnet_b0": STAGES}
BLOCKS["resnet34"] = BLOCKS["resnet50"] = BLOCKS["resnet18"]
MEAN = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
STD = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
CLASSES = 5


def randomised(name: str, seed: int = 0) -> nn.Module:
    """A torchvision net with random weights whose BatchNorm statistics are measured on random
    images: a fresh net's (mean 0, var 1) would match an import that forgot to load them, and
    its untrained signal dies out in MobileNet/EfficientNet (outputs the same for every input)."""
    torch.manual_seed(seed)
    net = getattr(torchvision.models, name)(weights=None, num_classes=CLASSES)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
                m.reset_running_stats()
                m.momentum, m.saved_momentum = None, m.momentum  # None: a plain average over the batch
            elif isinstance(m, nn.Linear):
                # Torchvision's MobileNet head init gives logits ~1e-3, under any useful tolerance.
                m.weight.normal_(0, m.in_features ** -0.5)
                m.bias.uniform_(-0.1, 0.1)
        net.train()((torch.rand(16, 3, 32, 32) - MEAN) / STD)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = m.saved_momentum
    return net.eval()


def assert_same(ours: torch.Tensor, theirs: torch.Tensor, tol: float = 1e-5) -> None:
    # Relative to the output's scale (random nets' logits reach ~5).
    scale = max(1.0, theirs.abs().max().item())
    assert (ours - theirs).abs().max().item() <= tol * scale


def normalised(x: torch.Tensor) -> torch.Tensor:
    return (x - MEAN.to(x.dtype)) / STD.to(x.dtype)


@dataclass
class Imported:
    name: str
    net: nn.Module  # torchvision's, in float64
    model: Classifier  # as imported (float32, channels-last)
    model64: Classifier  # a float64 copy: deep random nets lose ~1e-4 to float32 rounding, wiring errors ~1
    x: torch.Tensor

    @property
    def x64(self) -> torch.Tensor:
        return self.x.double()


@pytest.fixture(scope="module", params=ARCHS)
def imported(request, tmp_path_factory) -> Imported:
    name = request.param
    net = randomised(name)
    path = tmp_path_factory.mktemp(name) / f"{name}.pth"
    torch.save(net.state_dict(), path)
    model = import_torchvision(name, path, image_size=32)
    torch.manual_seed(1)
    return Imported(name, net.double(), model, copy.deepcopy(model).double(), torch.rand(2, 3, 32, 32))


@torch.no_grad()
def test_imported_model_gives_torchvision_logits_on_normalised_input(imported):
    name, net, model = imported.name, imported.net, imported.model
    assert not model.training and model.spec.arch == f"tv-{name}" and model.spec.num_classes == CLASSES
    theirs = net(normalised(imported.x64))
    assert (theirs[0] - theirs[1]).abs().max() > 0.1  # the inputs matter
    assert_same(imported.model64(imported.x64), theirs)
    out = model(imported.x)
    assert out.shape == (2, CLASSES) and out.dtype == torch.float32
    assert_same(out, theirs, tol=1e-3)


@torch.no_grad()
def test_blocks_are_named_by_stage_and_the_last_feature_map_is_torchvisions(imported):
    name, net, model = imported.name, imported.net, imported.model64
    outputs = model.block_outputs(imported.x64, flatten=False)
    assert model.block_names == BLOCKS[name]
    assert list(outputs) == ["input", *BLOCKS[name], "logits"]
    # Grouping torchvision's modules into blocks skips none: the last feature map is theirs.
    spatial, module = ("layer4", net.layer4) if name.startswith("resnet") else ("last_conv", net.features)
    seen = {}
    handle = module.register_forward_hook(lambda _m, _i, out: seen.update(out=out))
    net(normalised(imported.x64))
    handle.remove()
    assert_same(outputs[spatial], seen["out"])
    assert torch.equal(outputs["logits"], model(imported.x64))


@torch.no_grad()
def test_features_have_feature_dim_and_feed_torchvisions_own_head(imported):
    name, net, model = imported.name, imported.net, imported.model64
    assert model.features(imported.x64).shape == (2, model.feature_dim)
    head = net.fc if name.startswith("resnet") else net.classifier[-1]
    assert model.feature_dim == head.in_features
    assert isinstance(model.head, nn.Linear) and torch.equal(model.head.weight, head.weight)


@torch.no_grad()
def test_a_grey_image_of_another_size_goes_through_as_rgb(imported):
    grey = torch.rand(2, 1, 28, 28)
    out = imported.model(grey)
    assert out.shape == (2, CLASSES)
    assert torch.allclose(out, imported.model(grey.expand(-1, 3, -1, -1)), atol=1e-6)


@torch.no_grad()
def test_torchvision_state_dict_loads_strictly_into_a_fresh_torchvision_model(imported):
    name, net = imported.name, imported.net
    state = torchvision_state_dict(imported.model)
    assert list(state) == list(net.state_dict())
    fresh = getattr(torchvision.models, name)(weights=None, num_classes=CLASSES)
    fresh.load_state_dict(state, strict=True)
    assert_same(fresh.double().eval()(normalised(imported.x64)), net(normalised(imported.x64)))


@torch.no_grad()
def test_save_and_load_in_our_format_give_identical_logits(imported, tmp_path):
    model = imported.model
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.spec == model.spec and loaded.block_names == model.block_names
    assert torch.equal(loaded(imported.x), model(imported.x))


def test_build_model_with_a_seed_draws_torchvisions_initial_weights():
    spec = ModelSpec(arch="tv-resnet18", in_channels=3, image_size=32, num_classes=3)
    torch.manual_seed(7)
    theirs = torchvision.models.resnet18(weights=None, num_classes=3).state_dict()
    ours = torchvision_state_dict(build_model(spec, seed=7))
    assert all(torch.equal(ours[k], v) for k, v in theirs.items())


def test_a_torchvision_spec_with_one_input_channel_is_refused():
    with pytest.raises(ValueError, match="3 input channels"):
        build_model(ModelSpec(arch="tv-mobilenet_v3_small", in_channels=1, image_size=32, num_classes=3))
