"""linear-probe, layer-transfer, l2-sp, distill, progressive, multitask, mixed."""

import pytest
import torch
from synthetic_domains import blob_data, blob_test, lenet, images, mlp

from transferlab.errors import ConfigError, MethodRequirementError
from transferlab.methods import AdaptationData, get_method
from transferlab.methods.distill import distillation_loss
from transferlab.methods.l2_sp import l2sp_penalty
from transferlab.models import load_model, save_model
from transferlab.training import TrainSettings, accuracy, train_classifier

SETTINGS = TrainSettings(epochs=4, batch_size=16, lr=3e-3, patience=4, min_steps_per_epoch=8)
LABELLED = ["linear-probe", "layer-transfer", "l2-sp", "distill", "progressive", "multitask", "mixed"]


@pytest.fixture(scope="module")
def pair():
    data = blob_data(offset=2.0, labels_per_class=10, unlabelled=60)
    source = train_classifier(mlp(), data.source_train, data.source_val, SETTINGS).model
    return source, data


def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", LABELLED)
def test_loss_goes_down_and_target_accuracy_beats_source_only(name, pair):
    source, data = pair
    result = get_method(name)().fit(source, data, None, SETTINGS)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert "held-out labelled target" in result.checkpoint_criterion
    test = blob_test(offset=2.0)
    assert accuracy(result.model, test) >= accuracy(source, test)


@pytest.mark.parametrize("name", LABELLED)
def test_refuses_without_target_labels(name, pair):
    source, data = pair
    with pytest.raises(MethodRequirementError, match=f"'{name}' needs labelled target samples"):
        get_method(name)().fit(source, AdaptationData(data.source_train, data.source_val, None,
                                                      data.target_unlabelled), None, SETTINGS)


def test_linear_probe_keeps_the_backbone_bit_identical(pair):
    source, data = pair
    model = get_method("linear-probe")().fit(source, data, None, SETTINGS).model
    assert same(model.blocks, source.blocks)
    assert not torch.equal(model.head.weight, source.head.weight)


def test_layer_transfer_freezes_the_first_k_blocks(pair):
    source, data = pair
    model = get_method("layer-transfer")().fit(source, data, {"k": 1}, SETTINGS).model
    assert same(model.blocks[0], source.blocks[0])
    assert not same(model.blocks[1], source.blocks[1])


def test_layer_transfer_reverse_mode_freezes_the_last_blocks_and_head(pair):
    source, data = pair
    model = get_method("layer-transfer")().fit(source, data, {"k": 1, "mode": "last"}, SETTINGS).model
    assert same(model.blocks[1], source.blocks[1]) and same(model.head, source.head)
    assert not same(model.blocks[0], source.blocks[0])


def test_layer_transfer_with_batchnorm_keeps_frozen_buffers():
    # resnet-like blocks carry batch-norm running statistics: frozen means those too.
    from transferlab.models import ModelSpec, build_model

    spec = ModelSpec(arch="resnet18", image_size=8, num_classes=3)
    source = build_model(spec, seed=0)
    x = images("t", 12, 1, size=8)
    data = AdaptationData(x, x, x, None)
    model = get_method("layer-transfer")().fit(
        source, data, {"k": 2}, TrainSettings(epochs=1, batch_size=6, max_steps_per_epoch=2)).model
    assert same(model.blocks[0], source.blocks[0]) and same(model.blocks[1], source.blocks[1])


def test_layer_transfer_rejects_k_beyond_the_network(pair):
    source, data = pair
    with pytest.raises(ConfigError, match="only 2 blocks"):
        get_method("layer-transfer")().fit(source, data, {"k": 5}, SETTINGS)


def test_l2sp_penalty_is_zero_at_the_source_weights_and_grows_away_from_them(pair):
    source, _ = pair
    ref = {n: p.detach().clone() for n, p in source.named_parameters()}
    assert l2sp_penalty(source, ref, alpha=1.0, beta=1.0).item() == 0.0
    moved = get_method("finetune")().fit(source, pair[1], {"new_head": False}, SETTINGS).model
    assert l2sp_penalty(moved, ref, alpha=1.0, beta=1.0).item() > 0


def test_l2sp_strong_penalty_keeps_the_weights_closer(pair):
    source, data = pair
    ref = {n: p.detach().clone() for n, p in source.named_parameters()}
    weak = get_method("l2-sp")().fit(source, data, {"alpha": 0.0}, SETTINGS).model
    strong = get_method("l2-sp")().fit(source, data, {"alpha": 10.0}, SETTINGS).model
    assert l2sp_penalty(strong, ref, 1.0, 0.0) < l2sp_penalty(weak, ref, 1.0, 0.0)


def test_distillation_loss_is_zero_when_student_equals_teacher():
    z = torch.randn(5, 3)
    assert distillation_loss(z, z, 4.0).abs().item() < 1e-6
    assert distillation_loss(z, -z, 4.0).item() > 0


def test_progressive_never_changes_the_source_column_and_round_trips(pair, tmp_path):
    source, data = pair
    model = get_method("progressive")().fit(source, data, None, SETTINGS).model
    assert same(model.source_blocks, source.blocks)
    # every lateral (into each later block and into the head) is in the forward pass and learnt
    assert all(lateral.weight.abs().sum() > 0 for lateral in model.laterals)
    save_model(model, tmp_path)
    loaded = load_model(tmp_path)
    x = torch.from_numpy(data.source_val.x[:5])
    assert torch.allclose(loaded(x), model(x))
    assert loaded.features(x).shape == (5, model.feature_dim)


def test_progressive_on_lenet_images():
    src, tgt = images("s", 60, 1), images("t", 30, 2, invert=True)
    source = lenet()
    data = AdaptationData(src, src, tgt, None)
    model = get_method("progressive")().fit(source, data, None,
                                            TrainSettings(epochs=1, batch_size=8, max_steps_per_epoch=3)).model
    assert same(model.source_blocks, source.blocks)
    assert model(torch.from_numpy(tgt.x[:2])).shape == (2, 3)


def test_multitask_and_mixed_use_the_source_labels_too(pair):
    source, data = pair
    for name in ("multitask", "mixed"):
        result = get_method(name)().fit(source, data, None, SETTINGS)
        assert "source_ce" in result.history[0] and "target_ce" in result.history[0]
