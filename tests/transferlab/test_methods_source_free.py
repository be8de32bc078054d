"""shot and tent: source-free adaptation (a source model and unlabelled target data, no source data)."""

import numpy as np
import pytest
import torch
from synthetic_domains import CLASSES, blob_data, blob_test, blobs, lenet, mlp
from torch import nn

import transferlab.methods.shot as shot_module
from transferlab.data.types import Domain
from transferlab.errors import ConfigError, MethodRequirementError
from transferlab.methods import AdaptationData, applicable_methods, get_method
from transferlab.methods.shot import (
    diversity_loss,
    entropy_loss,
    information_maximisation_loss,
    shot_pseudo_labels,
)
from transferlab.methods.tent import configure_for_tent, norm_affine_parameters
from transferlab.models import Classifier, ModelSpec, build_model
from transferlab.training import BatchStream, TrainSettings, accuracy, train_classifier, train_mode
from transferlab.training.continuation import Continuation, continuing
from transferlab.validators import information_maximization

SOURCE_SETTINGS = TrainSettings(epochs=5, batch_size=32, min_steps_per_epoch=10)
SETTINGS = TrainSettings(epochs=10, batch_size=32, lr=3e-3, patience=10, min_steps_per_epoch=10)
LOGITS = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [-1.0, 3.0, 1.0], [0.0, 0.0, 4.0]])


def np_softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def source_free(pool: Domain, labelled: Domain | None = None) -> AdaptationData:
    return AdaptationData(source_train=None, source_val=None, target_labelled=labelled, target_unlabelled=pool,
                          source_classes=CLASSES)


def affine(domain: Domain, scale: float, shift: float) -> Domain:
    return Domain(domain.name, domain.x * scale + shift, domain.y, domain.classes)


def bn_mlp(dim: int = 6, hidden: int = 32, seed: int = 0) -> Classifier:
    """The built-in mlp's shape with batch norm after each linear layer (tent needs norm layers)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        blocks = [("fc1", nn.Sequential(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU())),
                  ("fc2", nn.Sequential(nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU()))]
        return Classifier(ModelSpec(arch="mlp", input_dim=dim, hidden=hidden, num_classes=3), blocks, hidden)


def states_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def nuisance():
    """A source mlp and a source-free target pool shifted along the nuisance coordinates."""
    data = blob_data(offset=3.0, labels_per_class=0, unlabelled=150)
    source = train_classifier(mlp(), data.source_train, data.source_val, SOURCE_SETTINGS).model
    return source, source_free(data.target_unlabelled)


@pytest.fixture(scope="module")
def rescaled():
    """A batch-norm source network and a pool whose inputs are offset by 3: batch statistics undo it."""
    source = train_classifier(bn_mlp(), blobs("source", 240, 1), blobs("source-val", 60, 2), SOURCE_SETTINGS).model
    return source, source_free(affine(blobs("target-pool", 150, 12), 1.0, 3.0))


# ---------------------------------------------------------------- the losses, against the formulas

def test_entropy_loss_is_the_batch_mean_of_the_prediction_entropy_in_nats():
    p = np_softmax(LOGITS)
    expected = np.mean(-np.sum(p * np.log(p), axis=1))
    assert entropy_loss(torch.tensor(LOGITS)).item() == pytest.approx(expected, rel=1e-9)
    assert entropy_loss(torch.zeros(5, 4)).item() == pytest.approx(np.log(4))  # uniform: log C, natural log


def test_diversity_loss_is_the_negative_entropy_of_the_mean_prediction():
    p_mean = np_softmax(LOGITS).mean(0)
    expected = np.sum(p_mean * np.log(p_mean))
    assert expected < 0
    assert diversity_loss(torch.tensor(LOGITS)).item() == pytest.approx(expected, rel=1e-9)
    # Balanced confident predictions reach the minimum -log C; a collapsed batch gets ~0.
    assert diversity_loss(torch.eye(3) * 50).item() == pytest.approx(-np.log(3), rel=1e-6)
    assert diversity_loss(torch.tensor([[50.0, 0, 0]] * 4)).item() == pytest.approx(0.0, abs=1e-6)


def test_information_maximisation_loss_is_entropy_plus_diversity_and_minus_the_im_validator():
    p = np_softmax(LOGITS)
    ent = np.mean(-np.sum(p * np.log(p), axis=1))
    div = np.sum(p.mean(0) * np.log(p.mean(0)))
    z = torch.tensor(LOGITS)
    assert information_maximisation_loss(z).item() == pytest.approx(ent + div, rel=1e-9)
    assert information_maximisation_loss(z).item() == pytest.approx(-information_maximization(LOGITS), rel=1e-9)
    assert information_maximisation_loss(z, diversity=False).item() == pytest.approx(ent, rel=1e-9)


# ---------------------------------------------------------------- pseudo-labels

def test_a_sample_the_classifier_gets_wrong_is_relabelled_to_its_nearest_centroid():
    # 1-D features: a class near 0.5, a class near 5; the classifier calls the sample at 5.5 class 0.
    # Plain cosine would see one direction for every positive 1-D feature: the appended 1 separates them.
    f = np.array([[0.4], [0.5], [0.6], [4.5], [5.0], [5.5]])
    z = np.array([[2.0, 0], [2, 0], [2, 0], [0, 2], [0, 2], [1, 0]])
    assert shot_pseudo_labels(f, z).tolist() == [0, 0, 0, 1, 1, 1]
    assert shot_pseudo_labels(torch.tensor(f), torch.tensor(z)).dtype == np.int64


def test_the_hard_label_round_corrects_what_soft_centroids_got_wrong():
    # With a 1 appended, a 1-D feature f sits at the angle θ = atan(1/f): the features are placed at
    # θ = 10, 12, 14 (class 0, but predicted uniformly), 30 (uniform too) and 60, 62 degrees (surely
    # class 1). Soft centroids: class 0 at ~16.5°, class 1 dragged by the uncertain samples to ~39°,
    # so θ = 30 goes to class 1. Hard centroids (12° and ~51°) give it back to class 0.
    f = (1 / np.tan(np.radians([10, 12, 14, 30, 60, 62.0])))[:, None]
    z = np.array([[0, 0], [0, 0], [0, 0], [0, 0], [0, 10], [0, 10.0]])
    assert shot_pseudo_labels(f, z, iterations=0).tolist() == [0, 0, 0, 1, 1, 1]
    assert shot_pseudo_labels(f, z, iterations=1).tolist() == [0, 0, 0, 0, 1, 1]
    assert shot_pseudo_labels(f, z, iterations=3).tolist() == [0, 0, 0, 0, 1, 1]
    assert shot_pseudo_labels(f, z, "euclidean", iterations=1).tolist() == [0, 0, 0, 1, 1, 1]


def test_a_class_no_sample_is_assigned_to_gets_no_centroid():
    f = np.array([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])
    z = np.array([[5.0, 0, -5], [5, 0, -5], [0, 5, -5], [0, 5, -5]])
    assert shot_pseudo_labels(f, z, iterations=2).tolist() == [0, 0, 1, 1]


def test_batch_stream_can_return_each_samples_index_and_keeps_its_state():
    dom = blobs("d", 50, 3)
    plain, indexed = BatchStream(dom, 8, 0, "t"), BatchStream(dom, 8, 0, "t", with_index=True)
    for _ in range(9):  # across a pass boundary
        x, y = plain.next(torch.device("cpu"))
        xi, yi, idx = indexed.next(torch.device("cpu"))
        assert torch.equal(x, xi) and torch.equal(y, yi) and idx.dtype == torch.int64
        assert np.array_equal(xi.numpy(), dom.x[idx.numpy()])
    saved = indexed.state()
    after = indexed.next(torch.device("cpu"))[2]
    indexed.restore(saved)
    assert torch.equal(indexed.next(torch.device("cpu"))[2], after)


# ---------------------------------------------------------------- shot

def test_shot_adapts_without_source_data_and_keeps_the_head(nuisance):
    source, data = nuisance
    before = {k: v.clone() for k, v in source.state_dict().items()}
    result = get_method("shot")().fit(source, data, None, SETTINGS)
    test = blob_test(offset=3.0)
    assert accuracy(result.model, test) > accuracy(source, test) + 0.3
    assert "information maximisation (label-free)" in result.checkpoint_criterion
    assert torch.equal(result.model.head.weight, source.head.weight)
    assert torch.equal(result.model.head.bias, source.head.bias)
    assert not torch.equal(result.model.blocks[0][0].weight, source.blocks[0][0].weight)
    assert not any(m.training for m in result.model.modules())
    assert all(torch.equal(v, before[k]) for k, v in source.state_dict().items())
    first, last = result.history[0], result.history[-1]
    assert last["entropy"] < first["entropy"] and last["pseudo_label_agreement"] > first["pseudo_label_agreement"]


def test_shot_refreshes_pseudo_labels_on_the_whole_pool_at_its_interval(nuisance, monkeypatch):
    source, data = nuisance
    calls = []
    real = shot_module.shot_pseudo_labels

    def spy(features, logits, *args):
        calls.append(len(features))
        return real(features, logits, *args)

    monkeypatch.setattr(shot_module, "shot_pseudo_labels", spy)
    short = SETTINGS.model_copy(update={"epochs": 4})
    get_method("shot")().fit(source, data, None, short)
    assert calls == [150] * 4  # before the first step, then at every epoch's start
    calls.clear()
    get_method("shot")().fit(source, data, {"pseudo_label_interval": 2}, short)
    assert len(calls) == 2
    calls.clear()
    history = get_method("shot")().fit(source, data, {"beta": 0.0}, short).history  # SHOT-IM
    assert calls == [] and "pseudo_label_ce" not in history[0]


@pytest.mark.parametrize("name", ["shot", "tent"])
def test_never_reads_the_pools_true_labels(name, nuisance, rescaled):
    source, data = nuisance if name == "shot" else rescaled
    pool = data.target_unlabelled
    blind = source_free(Domain(pool.name, pool.x, np.zeros_like(pool.y), pool.classes))
    short = SETTINGS.model_copy(update={"epochs": 2})
    assert states_equal(get_method(name)().fit(source, data, None, short).model,
                        get_method(name)().fit(source, blind, None, short).model)


def test_a_paused_shot_run_continues_with_its_pseudo_labels_to_the_same_weights(nuisance):
    source, data = nuisance
    cfg = SETTINGS.model_copy(update={"epochs": 6, "schedule_epochs": 4, "lr_schedule": "annealed"})
    whole, paused = Continuation(), Continuation()
    with continuing(whole):
        get_method("shot")().fit(source, data, None, cfg.model_copy(update={"epoch_limit": 3}))
    for limit in (1.2, 2, 3):  # 1.2: paused mid-epoch, between two refreshes of the labels
        with continuing(paused):
            get_method("shot")().fit(source, data, None, cfg.model_copy(update={"epoch_limit": limit}))
    assert paused.state.step == whole.state.step == 30
    assert all(torch.equal(a, b) for a, b in zip(paused.state.model.values(), whole.state.model.values()))
    assert np.array_equal(paused.state.streams["target"]["labels"], whole.state.streams["target"]["labels"])


def test_shot_checkpoints_on_labelled_target_when_there_are_some_or_on_the_last_epoch(nuisance):
    source, data = nuisance
    labelled = blob_data(offset=3.0, labels_per_class=5).target_labelled
    short = SETTINGS.model_copy(update={"epochs": 2})
    result = get_method("shot")().fit(source, source_free(data.target_unlabelled, labelled), None, short)
    assert "15 labelled target samples (not trained on)" in result.checkpoint_criterion
    last = get_method("shot")().fit(source, data, {"checkpoint": "last-epoch"}, short)
    assert last.best_epoch == 2 and last.checkpoint_criterion.startswith("last epoch")
    with pytest.raises(ConfigError, match="checkpoint"):
        get_method("shot").make_config({"checkpoint": "source-val-accuracy"})


# ---------------------------------------------------------------- tent

def test_tent_refuses_a_network_without_affine_normalisation_layers():
    pool = source_free(blobs("pool", 30, 4))
    with pytest.raises(MethodRequirementError, match=r"^method 'tent' adapts .* \('mlp'\) has none"):
        get_method("tent")().fit(mlp(), pool, None, SETTINGS)
    with pytest.raises(MethodRequirementError, match=r"\('lenet'\)"):
        get_method("tent").check_model(lenet())
    plain = bn_mlp()
    for m in plain.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.weight, m.bias = None, None
    with pytest.raises(MethodRequirementError, match="'tent'"):
        get_method("tent").check_model(plain)


def test_tent_accepts_batch_norm_group_norm_and_layer_norm_networks():
    get_method("tent").check_model(build_model(ModelSpec(arch="resnet18", image_size=8, num_classes=3), seed=0))
    ln = Classifier(ModelSpec(arch="mlp", input_dim=4, hidden=8, num_classes=3),
                    [("fc", nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.GroupNorm(2, 8)))], 8)
    get_method("tent").check_model(ln)
    assert [n for n, _ in norm_affine_parameters(ln)] == ["blocks.0.1.weight", "blocks.0.1.bias",
                                                          "blocks.0.2.weight", "blocks.0.2.bias"]


def test_tent_trains_only_norm_affine_parameters_and_only_batch_norm_sees_the_batch():
    model = bn_mlp()
    model.blocks[1].append(nn.Dropout(0.5))
    params = configure_for_tent(model)
    assert {id(p) for p in params} == {id(p) for _, p in norm_affine_parameters(model)}
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {n for n, _ in norm_affine_parameters(model)}
    train_mode(model)  # what the loop does at every epoch's start
    assert model.blocks[0][1].training and model.blocks[1][1].training
    assert not model.blocks[1][3].training  # dropout off: the adaptation signal is the target batch alone


def test_tent_changes_only_norm_affine_parameters_and_fixes_an_input_offset(rescaled):
    source, data = rescaled
    before = {k: v.clone() for k, v in source.state_dict().items()}
    result = get_method("tent")().fit(source, data, None, SETTINGS)
    test = affine(blobs("target-test", 300, 13), 1.0, 3.0)
    assert accuracy(result.model, test) > accuracy(source, test) + 0.3
    affine_names = {n for n, _ in norm_affine_parameters(source)}
    adapted = dict(result.model.named_parameters())
    for name, p in source.named_parameters():
        assert torch.equal(adapted[name], p) == (name not in affine_names), name
    assert not any(m.training for m in result.model.modules())
    assert all(torch.equal(v, before[k]) for k, v in source.state_dict().items())
    assert result.history[-1]["entropy"] < result.history[0]["entropy"]


def test_tent_re_estimates_the_running_statistics_on_the_target_pool(rescaled):
    source, data = rescaled
    model = get_method("tent")().fit(source, data, None, SETTINGS.model_copy(update={"epochs": 2})).model
    # The cumulative average over the pool's full batches of 32, in stored order: 4 batches, 128 samples.
    with torch.no_grad():
        pre = model.blocks[0][0](torch.from_numpy(data.target_unlabelled.x[:128]))
    bn = model.blocks[0][1]
    assert torch.allclose(bn.running_mean, pre.mean(0), atol=1e-5)
    batch_vars = pre.view(4, 32, -1).var(1, unbiased=True).mean(0)
    assert torch.allclose(bn.running_var, batch_vars, rtol=1e-4)
    assert bn.momentum == source.blocks[0][1].momentum


def test_tent_does_not_hurt_when_there_is_no_shift(rescaled):
    source, _ = rescaled
    result = get_method("tent")().fit(source, source_free(blobs("target-pool", 150, 12)), None, SETTINGS)
    test = blobs("target-test", 300, 13)
    assert accuracy(result.model, test) >= accuracy(source, test) - 0.02


def test_a_paused_tent_run_continues_to_the_same_weights_and_statistics(rescaled):
    source, data = rescaled
    cfg = SETTINGS.model_copy(update={"epochs": 6, "schedule_epochs": 4, "lr_schedule": "annealed"})
    whole, paused = Continuation(), Continuation()
    with continuing(whole):
        get_method("tent")().fit(source, data, None, cfg.model_copy(update={"epoch_limit": 3}))
    for limit in (1.2, 3):
        with continuing(paused):
            get_method("tent")().fit(source, data, None, cfg.model_copy(update={"epoch_limit": limit}))
    assert all(torch.equal(a, b) for a, b in zip(paused.state.model.values(), whole.state.model.values()))


# ---------------------------------------------------------------- both

@pytest.mark.parametrize("name", ["shot", "tent"])
def test_refuses_without_unlabelled_target_and_for_a_new_task(name, rescaled):
    source, data = rescaled
    with pytest.raises(MethodRequirementError, match=f"'{name}' needs unlabelled target"):
        get_method(name)().fit(source, source_free(None), None, SETTINGS)
    pool = data.target_unlabelled
    new_task = source_free(Domain(pool.name, pool.x, pool.y, ("x", "y", "z")))
    with pytest.raises(MethodRequirementError, match=f"'{name}' needs the target to have the source's classes"):
        get_method(name)().fit(source, new_task, None, SETTINGS)


def test_both_are_registered_as_source_free_and_apply_without_source_data():
    for name in ("shot", "tent"):
        cls = get_method(name)
        assert cls.uses_unlabelled_target and cls.needs_unlabelled_target and cls.shared_label_space
        assert not cls.uses_source and not cls.needs_target_labels
    applicable = applicable_methods(source_free(blobs("pool", 30, 4)))
    assert {"shot", "tent"} <= set(applicable) and "dann" not in applicable
    assert get_method("shot").Config().beta == 0.1 and get_method("tent").Config().weight_decay == 0.0
