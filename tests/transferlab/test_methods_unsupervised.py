"""dan, deep-coral, cdan, instance-weighting."""

import numpy as np
import pytest
import torch
from synthetic_domains import blob_data, blob_test, mlp

from transferlab.errors import MethodRequirementError
from transferlab.methods import AdaptationData, get_method
from transferlab.methods.cdan import MultilinearMap, entropy_weights
from transferlab.methods.dan import multi_kernel_mmd2
from transferlab.methods.deep_coral import coral_loss
from transferlab.methods.instance_weighting import density_ratio
from transferlab.training import TrainSettings, accuracy, train_classifier

SOURCE_SETTINGS = TrainSettings(epochs=5, batch_size=32, min_steps_per_epoch=10)
SETTINGS = TrainSettings(epochs=10, batch_size=32, patience=10, min_steps_per_epoch=10)
UDA = ["dan", "deep-coral", "cdan", "instance-weighting"]


@pytest.fixture(scope="module")
def pair():
    data = blob_data(offset=3.0, labels_per_class=0, unlabelled=150)
    source = train_classifier(mlp(), data.source_train, data.source_val, SOURCE_SETTINGS).model
    return source, data


@pytest.mark.parametrize("name", UDA)
def test_trains_with_a_label_free_checkpoint_and_source_loss_goes_down(name, pair):
    source, data = pair
    result = get_method(name)().fit(source, data, None, SETTINGS.model_copy(update={"epochs": 3}))
    assert result.history[-1]["source_ce"] < result.history[0]["source_ce"]
    assert "information maximisation (label-free)" in result.checkpoint_criterion


@pytest.mark.parametrize("name", UDA)
def test_refuses_without_unlabelled_target(name, pair):
    source, data = pair
    with pytest.raises(MethodRequirementError, match=f"'{name}' needs unlabelled target"):
        get_method(name)().fit(source, AdaptationData(data.source_train, data.source_val, None, None), None, SETTINGS)


@pytest.mark.parametrize("name", ["dan", "cdan"])
def test_beats_source_only_on_a_nuisance_shift(name, pair):
    source, data = pair
    result = get_method(name)().fit(source, data, None, SETTINGS)
    test = blob_test(offset=3.0)
    assert accuracy(result.model, test) > accuracy(source, test) + 0.15


def test_dan_reduces_the_mmd_it_penalises(pair):
    source, data = pair
    history = get_method("dan")().fit(source, data, {"layers": ["features"]}, SETTINGS).history
    assert history[-1]["mmd2_features"] < history[0]["mmd2_features"]


def test_multi_kernel_mmd_is_zero_for_equal_batches_and_differentiable():
    a = torch.randn(20, 4)
    assert multi_kernel_mmd2(a, a.clone()).abs().item() < 1e-6
    b = (torch.randn(20, 4) + 2).requires_grad_(True)
    m = multi_kernel_mmd2(a, b)
    m.backward()
    assert m.item() > 0.1 and b.grad.abs().sum() > 0


def test_coral_loss_zero_for_equal_covariance_positive_otherwise_and_reduced(pair):
    a = torch.randn(50, 3)
    assert coral_loss(a, a + 5.0).abs().item() < 1e-6  # a mean shift has the same covariance
    assert coral_loss(a, a * 3).item() > 0
    source, data = pair
    short = SETTINGS.model_copy(update={"epochs": 3})
    free = get_method("deep-coral")().fit(source, data, {"trade_off": 0.0}, short).history
    aligned = get_method("deep-coral")().fit(source, data, {"trade_off": 1000.0}, short).history
    assert aligned[-1]["align"] < 0.5 * free[-1]["align"]


def test_cdan_multilinear_map_exact_and_randomized():
    f, g = torch.randn(4, 5), torch.softmax(torch.randn(4, 3), 1)
    exact = MultilinearMap(5, 3, randomized_above=100, r=8, seed=0)
    assert not exact.randomized and exact(f, g).shape == (4, 15)
    assert torch.allclose(exact(f, g)[0].view(3, 5), torch.outer(g[0], f[0]))
    rand = MultilinearMap(5, 3, randomized_above=10, r=8, seed=0)
    assert rand.randomized and rand(f, g).shape == (4, 8)


def test_entropy_weights_favour_confident_predictions():
    g = torch.tensor([[0.98, 0.01, 0.01], [1 / 3, 1 / 3, 1 / 3]])
    w = entropy_weights(g)
    assert w[0] > w[1] and w.mean().item() == pytest.approx(1.0)


def test_density_ratio_upweights_source_samples_that_look_like_the_target():
    rng = np.random.default_rng(0)
    src = rng.normal(0, 1, size=(400, 1))
    tgt = rng.normal(1.5, 1, size=(400, 1))
    w = density_ratio(src, tgt, src, max_weight=10, c=1.0, seed=0)
    assert w.mean() == pytest.approx(1.0, abs=1e-5)
    assert w[src[:, 0] > 1.5].mean() > 2 * w[src[:, 0] < 0].mean()
    assert density_ratio(src, tgt, src, max_weight=2, c=1.0, seed=0).max() < w.max()  # clipping bites


def test_instance_weighting_records_its_weights(pair):
    source, data = pair
    result = get_method("instance-weighting")().fit(source, data, None, SETTINGS.model_copy(update={"epochs": 2}))
    assert result.history[0]["weight_max"] > 1.0
    assert 0 < result.history[0]["effective_sample_fraction"] <= 1.0


def test_instance_weighting_trains_on_its_weights(pair, monkeypatch):
    """Weights that keep only class-0 source samples pull the network towards class 0: dropping the
    weights from the loss (a plain mean cross-entropy) would leave its predictions spread."""
    import transferlab.methods.instance_weighting as iw

    source, data = pair
    only_class_0 = (3.0 * (data.source_train.y == 0)).astype(np.float32)  # mean 1, as density_ratio returns
    monkeypatch.setattr(iw, "density_ratio", lambda *a, **k: only_class_0)
    result = get_method("instance-weighting")().fit(source, data, None, SETTINGS.model_copy(update={"epochs": 3}))
    predicted = torch.from_numpy(data.source_val.x)
    with torch.no_grad():
        share_0 = (result.model.eval()(predicted).argmax(1) == 0).float().mean().item()
    assert share_0 > 0.9
