import math

import pytest
import torch
from synthetic_domains import blob_data, blob_test, mlp

from transferlab.errors import MethodRequirementError
from transferlab.methods import get_method
from transferlab.methods.adversarial import GradientReversal, grad_reverse, warmup_coefficient
from transferlab.training import TrainSettings, accuracy, train_classifier

SOURCE_SETTINGS = TrainSettings(epochs=5, batch_size=32, min_steps_per_epoch=10)
SETTINGS = TrainSettings(epochs=10, batch_size=32, patience=10, min_steps_per_epoch=10)


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = grad_reverse(x, 0.3)
    assert torch.equal(y, x)
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.allclose(x.grad, -0.3 * torch.tensor([1.0, 2.0, 3.0]))
    x.grad = None
    GradientReversal(1.0)(x).sum().backward()
    assert torch.equal(x.grad, -torch.ones(3))


def test_warmup_schedule():
    assert warmup_coefficient(0.0) == 0.0
    assert warmup_coefficient(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert 0.99 < warmup_coefficient(1.0) < 1.0


@pytest.fixture(scope="module")
def pair():
    data = blob_data(offset=3.0, labels_per_class=0, unlabelled=150)
    source = train_classifier(mlp(), data.source_train, data.source_val, SOURCE_SETTINGS).model
    return source, data


def test_dann_beats_source_only_on_a_nuisance_shift_without_target_labels(pair):
    source, data = pair
    result = get_method("dann")().fit(source, data, None, SETTINGS)
    test = blob_test(offset=3.0)
    assert accuracy(result.model, test) > accuracy(source, test) + 0.15
    assert "information maximisation" in result.checkpoint_criterion
    coeffs = [h["grl_coefficient"] for h in result.history]
    assert coeffs == sorted(coeffs) and coeffs[0] < 0.5 < coeffs[-1]
    assert result.history[-1]["source_ce"] < result.history[0]["source_ce"]


def test_dann_uses_labelled_target_for_checkpoints_when_there_are_some(pair):
    source, data = pair
    labelled = blob_data(offset=3.0, labels_per_class=5).target_labelled
    data = type(data)(data.source_train, data.source_val, labelled, data.target_unlabelled)
    result = get_method("dann")().fit(source, data, None, SETTINGS.model_copy(update={"epochs": 2}))
    assert "15 labelled target samples (not trained on)" in result.checkpoint_criterion


def test_dann_refuses_without_unlabelled_target(pair):
    source, data = pair
    with pytest.raises(MethodRequirementError, match="'dann' needs unlabelled target"):
        get_method("dann")().fit(source, type(data)(data.source_train, data.source_val, None, None), None, SETTINGS)


def test_dann_is_deterministic_for_a_seed(pair):
    source, data = pair
    short = SETTINGS.model_copy(update={"epochs": 2})
    a = get_method("dann")().fit(source, data, None, short)
    b = get_method("dann")().fit(source, data, None, short)
    assert a.history == [dict(h, epoch_seconds=a.history[i]["epoch_seconds"]) for i, h in enumerate(b.history)]
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))
