"""mean-teacher: the self-ensembling losses against the paper's formulas, the moving-average
teacher, and the method end to end."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from synthetic_domains import blob_data, images, lenet, mlp

from transferlab.data.types import Domain
from transferlab.methods import AdaptationData, get_method
from transferlab.methods.ema import StudentTeacher
from transferlab.methods.mean_teacher import self_ensembling_losses
from transferlab.training import TrainSettings, accuracy, train_classifier

STUDENT = [[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [0.0, 0.0, 0.0], [1.0, 3.0, 0.5]]
TEACHER = [[4.0, 0.0, -1.0], [0.0, 5.0, 0.0], [0.2, 0.1, 0.0], [0.0, 6.0, 0.0]]
SETTINGS = TrainSettings(epochs=10, batch_size=32, patience=10, min_steps_per_epoch=10)


def _softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def paper_losses(threshold: float) -> tuple[float, float, float]:
    """French et al. 2018, Sec. 3.1-3.3 (squared difference, confidence mask, class balance), in loops."""
    zs, zt = [_softmax(z) for z in STUDENT], [_softmax(z) for z in TEACHER]
    b, c = len(zs), len(zs[0])
    mask = [1.0 if max(p) > threshold else 0.0 for p in zt]
    delta = [sum((s[k] - t[k]) ** 2 for k in range(c)) / c for s, t in zip(zs, zt)]
    consistency = sum(m * d for m, d in zip(mask, delta)) / b
    mean = [sum(s[k] for s in zs) / b for k in range(c)]
    q = 1 / c
    bce = sum(-q * math.log(p) - (1 - q) * math.log(1 - p) for p in mean)
    return consistency, bce * sum(mask) / b, sum(mask) / b


@pytest.mark.parametrize("threshold", [0.5, 0.968])
def test_losses_are_the_papers_formulas_on_a_fixed_batch(threshold):
    consistency, balance, rate = paper_losses(threshold)
    out = self_ensembling_losses(torch.tensor(STUDENT), torch.tensor(TEACHER), threshold)
    assert out["consistency"].item() == pytest.approx(consistency, rel=1e-6)
    assert out["class_balance"].item() == pytest.approx(balance, rel=1e-6)
    assert out["mask_rate"].item() == pytest.approx(rate)


def test_losses_pinned_at_the_papers_threshold():
    # paper_losses(0.968) as literals: three of four teacher predictions are that confident.
    out = self_ensembling_losses(torch.tensor(STUDENT), torch.tensor(TEACHER), 0.968)
    assert out["consistency"].item() == pytest.approx(0.0225548, abs=1e-6)
    assert out["class_balance"].item() == pytest.approx(1.5491433, abs=1e-6)
    assert out["mask_rate"].item() == pytest.approx(0.75)


def test_only_the_student_gets_gradients():
    s = torch.tensor(STUDENT, requires_grad=True)
    t = torch.tensor(TEACHER, requires_grad=True)
    out = self_ensembling_losses(s, t, 0.5)
    (out["consistency"] + out["class_balance"]).backward()
    assert t.grad is None and s.grad.abs().sum() > 0


def test_teacher_is_the_moving_average_of_the_student():
    pair = StudentTeacher(mlp())
    teacher_before = [p.clone() for p in pair.teacher.parameters()]
    with torch.no_grad():
        for p in pair.student.parameters():
            p.add_(1.0)
    pair.update_teacher(0.9)
    for before, t, s in zip(teacher_before, pair.teacher.parameters(), pair.student.parameters()):
        assert torch.allclose(t, 0.9 * before + 0.1 * s)
        assert not t.requires_grad
    x = torch.randn(4, 6)
    pair.eval()
    assert torch.equal(pair(x), pair.teacher(x))


@pytest.mark.parametrize("share", [True, False])
def test_teacher_takes_the_students_batch_norm_statistics_only_when_shared(share):
    pair = StudentTeacher(nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4)), share_statistics=share)
    pair.student.train()
    pair.student(torch.randn(16, 6) * 3 + 2)
    pair.update_teacher(0.99)
    bn_t, bn_s = pair.teacher[1], pair.student[1]
    if share:  # adamatch's average, which never runs forward in training
        assert torch.equal(bn_t.running_mean, bn_s.running_mean) and torch.equal(bn_t.running_var, bn_s.running_var)
        assert int(bn_t.num_batches_tracked) == 1
    else:  # mean-teacher's teacher keeps the statistics of the target batches it saw itself
        assert torch.equal(bn_t.running_mean, torch.zeros(4)) and int(bn_t.num_batches_tracked) == 0


def _dimmed(domain, name):
    """A contrast and brightness shift: 0.55 x + 0.25."""
    return Domain(name, np.clip(domain.x * 0.55 + 0.25, 0, 1).astype(np.float32), domain.y, domain.classes)


@pytest.fixture(scope="module")
def dimmed():
    src, val = images("s", 120, 1), images("s-val", 60, 3)
    pool = _dimmed(images("t", 150, 2), "t")
    data = AdaptationData(src, val, None, Domain("t", pool.x, np.zeros(len(pool), dtype=np.int64), pool.classes))
    source = train_classifier(lenet(), src, val, TrainSettings(epochs=3, batch_size=16, min_steps_per_epoch=10)).model
    return source, data, _dimmed(images("te", 150, 4), "te")


def test_mean_teacher_beats_source_only_on_a_brightness_shift_and_returns_the_teacher(dimmed):
    source, data, test = dimmed
    result = get_method("mean-teacher")().fit(source, data, None, SETTINGS.model_copy(update={"epochs": 4,
                                                                                           "batch_size": 16}))
    assert accuracy(result.model, test) > accuracy(source, test) + 0.15
    assert not any(p.requires_grad for p in result.model.parameters())  # the teacher, not the student
    assert "information maximisation (label-free)" in result.checkpoint_criterion


def test_the_consistency_term_pulls_the_student_to_the_teacher():
    data = blob_data(offset=1.0, labels_per_class=0, unlabelled=150)
    source = train_classifier(mlp(), data.source_train, data.source_val,
                              TrainSettings(epochs=1, min_steps_per_epoch=80, lr=3e-3)).model
    short = SETTINGS.model_copy(update={"epochs": 3})
    config = {"confidence": 0.5, "class_balance": 0.0}
    free = get_method("mean-teacher")().fit(source, data, {**config, "trade_off": 0.0}, short).history
    held = get_method("mean-teacher")().fit(source, data, {**config, "trade_off": 30.0}, short).history
    assert held[-1]["consistency"] < 0.8 * free[-1]["consistency"]  # a reversed sign raises it


def test_mean_teacher_config_has_the_papers_defaults():
    cfg = get_method("mean-teacher").Config()
    assert (cfg.trade_off, cfg.ema, cfg.confidence, cfg.class_balance) == (3.0, 0.99, 0.968, 0.005)
