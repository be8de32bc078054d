"""mcc: the minimum-class-confusion loss against the paper's formula, and the method end to end."""

import math

import pytest
import torch
from synthetic_domains import blob_data, blob_test, mlp

from transferlab.errors import MethodRequirementError
from transferlab.methods import AdaptationData, get_method
from transferlab.methods.cdan import entropy_weights
from transferlab.methods.mcc import class_confusion, mcc_loss
from transferlab.training import TrainSettings, accuracy, train_classifier

LOGITS = [[2.0, 0.0, -1.0], [0.0, 1.5, 0.0], [1.0, 1.0, 0.0], [-0.5, 0.0, 3.0]]
SETTINGS = TrainSettings(epochs=10, batch_size=32, patience=10, min_steps_per_epoch=10)


def paper_mcc(logits: list[list[float]], t: float) -> float:
    """Jin et al. 2020, eqs. 1-6, written out in plain loops (no torch)."""
    b, n = len(logits), len(logits[0])
    y = []
    for z in logits:
        e = [math.exp(v / t) for v in z]
        y.append([v / sum(e) for v in e])
    h = [-sum(p * math.log(p) for p in row) for row in y]
    raw = [1 + math.exp(-v) for v in h]
    w = [b * r / sum(raw) for r in raw]
    c = [[sum(w[i] * y[i][j] * y[i][k] for i in range(b)) for k in range(n)] for j in range(n)]
    c = [[v / sum(row) for v in row] for row in c]
    return sum(abs(c[j][k]) for j in range(n) for k in range(n) if j != k) / n


@pytest.mark.parametrize("t", [1.0, 2.5])
def test_mcc_loss_is_the_papers_formula_on_a_fixed_batch(t):
    assert mcc_loss(torch.tensor(LOGITS), t).item() == pytest.approx(paper_mcc(LOGITS, t), rel=1e-6)


def test_mcc_loss_pinned_value_at_the_papers_temperature():
    # paper_mcc(LOGITS, 2.5), kept as a literal so that the reference itself cannot drift.
    assert mcc_loss(torch.tensor(LOGITS), 2.5).item() == pytest.approx(0.5969201, abs=1e-6)


def test_confident_one_hot_predictions_have_no_confusion_and_uniform_ones_the_most():
    one_hot = torch.eye(3) * 100.0
    assert mcc_loss(one_hot, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    assert mcc_loss(torch.zeros(5, 3), 2.5).item() == pytest.approx(2 / 3)  # (C − 1) / C


def test_uncertainty_weights_sum_to_the_batch_and_favour_confident_samples():
    probs = torch.tensor([[0.98, 0.01, 0.01], [1 / 3, 1 / 3, 1 / 3], [0.6, 0.3, 0.1]])
    w = entropy_weights(probs)  # MCC's W_ii
    assert w.sum().item() == pytest.approx(3.0)
    assert w[0] > w[2] > w[1]
    assert not w.requires_grad


def test_class_confusion_rows_are_normalised():
    c = class_confusion(torch.tensor(LOGITS), 2.5)
    assert torch.allclose(c.sum(1), torch.ones(3))


@pytest.fixture(scope="module")
def pair():
    data = blob_data(offset=3.0, labels_per_class=0, unlabelled=150)
    source = train_classifier(mlp(), data.source_train, data.source_val,
                              TrainSettings(epochs=5, batch_size=32, min_steps_per_epoch=10)).model
    return source, data


def test_mcc_lowers_the_target_confusion_it_penalises_and_keeps_the_source_task(pair):
    source, data = pair
    short = SETTINGS.model_copy(update={"epochs": 3})
    free = get_method("mcc")().fit(source, data, {"trade_off": 0.0}, short).history
    result = get_method("mcc")().fit(source, data, {"trade_off": 1.0}, short)
    assert result.history[-1]["align"] < free[-1]["align"]
    assert result.history[-1]["source_ce"] < result.history[0]["source_ce"] + 0.05
    assert "information maximisation (label-free)" in result.checkpoint_criterion


def test_mcc_beats_source_only_on_a_nuisance_shift(pair):
    source, data = pair
    result = get_method("mcc")().fit(source, data, None, SETTINGS)
    test = blob_test(offset=3.0)
    assert accuracy(result.model, test) > accuracy(source, test) + 0.15


def test_mcc_refuses_without_unlabelled_target(pair):
    source, data = pair
    with pytest.raises(MethodRequirementError, match="'mcc' needs unlabelled target"):
        get_method("mcc")().fit(source, AdaptationData(data.source_train, data.source_val, None, None), None, SETTINGS)


def test_mcc_config_has_the_papers_defaults():
    cfg = get_method("mcc").Config()
    assert (cfg.trade_off, cfg.temperature) == (1.0, 2.5)
