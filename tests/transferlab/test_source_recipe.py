"""The source recipe SHOT's digit experiments use: label-smoothed pretraining and the lenet-bn network."""

import numpy as np
import pytest
import torch
from synthetic_domains import CLASSES, blobs, images
from torch import nn

from transferlab.config import ModelParams, PipelineParams, TrainParams
from transferlab.errors import MethodRequirementError
from transferlab.methods import AdaptationData, get_method
from transferlab.models import Classifier, ModelSpec, build_model
from transferlab.models.classifier import BUILTIN_ARCHS
from transferlab.training import BatchStream, TrainSettings, accuracy, train_classifier


def linear_net(dim: int = 6, seed: int = 0) -> Classifier:
    """A network without dropout, so that the loss of its first step can be recomputed exactly."""
    spec = ModelSpec(arch="mlp", input_dim=dim, hidden=8, num_classes=3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Classifier(spec, [("fc", nn.Sequential(nn.Linear(dim, 8), nn.Tanh()))], 8)


def first_step_loss(smoothing: float) -> tuple[float, float]:
    """(the loss train_classifier records for one step, that loss by the formula on the same batch)."""
    train, val = blobs("source", 60, seed=1), blobs("source-val", 30, seed=2)
    model = linear_net()
    with torch.no_grad():
        x, y = BatchStream(train, 16, 0, "train").next(torch.device("cpu"))
        logits_before = model(x).double()
    settings = TrainSettings(epochs=1, batch_size=16, lr=1e-9, min_steps_per_epoch=1, max_steps_per_epoch=1,
                             label_smoothing=smoothing)
    recorded = train_classifier(model, train, val, settings).history[0]["loss"]
    k = logits_before.shape[1]
    q = (1 - smoothing) * torch.nn.functional.one_hot(y, k).double() + smoothing / k
    expected = -(q * torch.log_softmax(logits_before, 1)).sum(1).mean().item()
    return recorded, expected


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
def test_label_smoothing_is_cross_entropy_to_smoothed_targets(smoothing):
    recorded, expected = first_step_loss(smoothing)
    assert recorded == pytest.approx(expected, rel=1e-5)


def test_label_smoothing_changes_the_loss_and_defaults_to_plain_cross_entropy():
    assert TrainSettings().label_smoothing == 0.0
    assert first_step_loss(0.0)[0] != pytest.approx(first_step_loss(0.1)[0], rel=1e-4)


def test_label_smoothing_is_a_pretrain_param():
    params = PipelineParams(pretrain={"label_smoothing": 0.1})
    assert params.pretrain.label_smoothing == 0.1
    assert TrainSettings(**params.pretrain.model_dump()).label_smoothing == 0.1
    assert TrainParams().label_smoothing == 0.0
    with pytest.raises(ValueError):
        TrainParams(label_smoothing=1.0)


def test_lenet_bn_has_named_blocks_and_a_batch_normed_bottleneck():
    assert "lenet-bn" in BUILTIN_ARCHS
    assert ModelParams(arch="lenet-bn", hidden=256).spec(in_channels=1, image_size=28, input_dim=None,
                                                          num_classes=10).arch == "lenet-bn"
    model = build_model(ModelSpec(arch="lenet-bn", hidden=256, image_size=28, num_classes=10), seed=0)
    assert model.block_names == ["conv1", "conv2", "bottleneck"]
    assert model.feature_dim == 256 and model.head.in_features == 256
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(bns) == 1 and bns[0].num_features == 256
    assert not any(isinstance(m, nn.ReLU) for m in model.blocks[2])  # linear -> BN -> dropout, as SHOT's
    model.eval()
    outs = model.block_outputs(torch.zeros(2, 1, 28, 28))
    assert list(outs) == ["input", "conv1", "conv2", "bottleneck", "logits"]
    assert outs["bottleneck"].shape == (2, 256) and outs["logits"].shape == (2, 10)
    same = build_model(ModelSpec(arch="lenet-bn", hidden=256, image_size=28, num_classes=10), seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values()))


def test_lenet_bn_trains_and_tent_accepts_it_where_it_refuses_lenet():
    train, val = images("source", 96, seed=1), images("source-val", 48, seed=2)
    model = build_model(ModelSpec(arch="lenet-bn", hidden=16, image_size=16, num_classes=3), seed=0)
    before = accuracy(model, val)
    settings = TrainSettings(epochs=3, batch_size=16, lr=3e-3, min_steps_per_epoch=6, label_smoothing=0.1)
    trained = train_classifier(model, train, val, settings).model
    assert accuracy(trained, val) >= 0.9 > before
    pool = images("pool", 48, seed=3, invert=False)
    data = AdaptationData(None, None, None, pool, source_classes=CLASSES)
    tent = get_method("tent")
    tent.check_model(trained)  # lenet-bn has batch norm to adapt
    with pytest.raises(MethodRequirementError):
        tent.check_model(build_model(ModelSpec(arch="lenet", hidden=16, image_size=16, num_classes=3), seed=0))
    adapted = tent().fit(trained, data, {"checkpoint": "last-epoch"},
                         TrainSettings(epochs=1, batch_size=16, min_steps_per_epoch=2)).model
    assert np.isfinite(accuracy(adapted, val))
