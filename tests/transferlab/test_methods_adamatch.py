"""adamatch: its losses against the paper's formulas on a fixed batch, and the method end to end."""

import math

import pytest
import torch
from synthetic_domains import blob_data, blob_test, images, lenet, mlp
from torch import nn

from transferlab.methods import AdaptationData, get_method
from transferlab.methods.adamatch import (
    adamatch_losses,
    batch_norm_untracked,
    interpolated_source_logits,
    warmup_weight,
)
from transferlab.training import TrainSettings, accuracy, train_classifier

ZS_W = [[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [3.0, 0.0, 0.0]]
ZS_S = [[1.0, 0.5, -1.0], [0.0, 1.0, 0.5], [2.0, 1.0, 0.0]]
Y = [0, 1, 0]
ZT_W = [[0.0, 2.5, 0.0], [1.0, 1.0, 0.9], [0.0, 0.0, 4.0], [2.0, 0.0, 0.0]]
ZT_S = [[0.5, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [0.0, 0.5, 0.0]]
SETTINGS = TrainSettings(epochs=10, batch_size=32, patience=10, min_steps_per_epoch=10)


def _softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def _ce(z, k):
    return -math.log(_softmax(z)[k])


def paper_losses(tau: float) -> tuple[float, float, float]:
    """Berthelot et al. 2022, Sec. 3 (distribution alignment, relative threshold, losses), in loops."""
    ps, pt = [_softmax(z) for z in ZS_W], [_softmax(z) for z in ZT_W]
    c = len(ps[0])
    mean_s = [sum(p[k] for p in ps) / len(ps) for k in range(c)]
    mean_t = [sum(p[k] for p in pt) / len(pt) for k in range(c)]
    aligned = []
    for p in pt:
        raw = [p[k] * mean_s[k] / mean_t[k] for k in range(c)]
        aligned.append([v / sum(raw) for v in raw])
    threshold = tau * sum(max(p) for p in ps) / len(ps)
    source = (sum(_ce(z, y) for z, y in zip(ZS_W, Y)) / len(Y) + sum(_ce(z, y) for z, y in zip(ZS_S, Y)) / len(Y))
    mask = [1.0 if max(a) >= threshold else 0.0 for a in aligned]
    target = sum(m * _ce(z, a.index(max(a))) for m, z, a in zip(mask, ZT_S, aligned)) / len(ZT_S)
    return source, target, sum(mask) / len(mask)


def _losses(tau):
    t = torch.tensor
    return adamatch_losses(t(ZS_W), t(ZS_S), t(Y), t(ZT_W), t(ZT_S), tau)


@pytest.mark.parametrize("tau", [0.6, 0.9])
def test_losses_are_the_papers_formulas_on_a_fixed_batch(tau):
    source, target, rate = paper_losses(tau)
    out = _losses(tau)
    assert out["source_ce"].item() == pytest.approx(source, rel=1e-6)
    assert out["target_ce"].item() == pytest.approx(target, rel=1e-6)
    assert out["mask_rate"].item() == pytest.approx(rate)


def test_losses_pinned_at_the_papers_threshold():
    # paper_losses(0.9), kept as literals so that the reference itself cannot drift. The relative
    # threshold is 0.9 × 0.794 = 0.715 here: three of four aligned target predictions pass it.
    out = _losses(0.9)
    assert out["source_ce"].item() == pytest.approx(0.7906568, abs=1e-6)
    assert out["target_ce"].item() == pytest.approx(0.7091603, abs=1e-6)
    assert out["mask_rate"].item() == pytest.approx(0.75)


def test_pseudo_labels_carry_no_gradient_and_the_strong_view_does():
    zt_w = torch.tensor(ZT_W, requires_grad=True)
    zt_s = torch.tensor(ZT_S, requires_grad=True)
    out = adamatch_losses(torch.tensor(ZS_W), torch.tensor(ZS_S), torch.tensor(Y), zt_w, zt_s, 0.6)
    out["target_ce"].backward()
    assert zt_w.grad is None and zt_s.grad.abs().sum() > 0


def test_warmup_rises_from_zero_to_one_over_the_first_half():
    assert [warmup_weight(p) for p in (0.0, 0.25, 0.5, 0.9)] == pytest.approx([0.0, 0.5, 1.0, 1.0])


class _BnNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x):
        return self.bn(x)


def test_logit_interpolation_mixes_the_source_only_pass_without_touching_running_stats():
    torch.manual_seed(0)
    net = _BnNet().train()
    xs, xt = torch.randn(8, 3), torch.randn(8, 3) + 5
    joint = net(torch.cat([xs, xt]))[:8]
    before = net.bn.running_mean.clone()
    with batch_norm_untracked(net):
        alone = net(xs)
    assert torch.equal(net.bn.running_mean, before) and net.bn.track_running_stats
    mixed = interpolated_source_logits(net, joint, xs)
    lo, hi = torch.minimum(joint, alone), torch.maximum(joint, alone)
    assert ((mixed >= lo - 1e-6) & (mixed <= hi + 1e-6)).all() and not torch.allclose(mixed, joint)
    assert torch.equal(net.bn.running_mean, before)
    plain = nn.Linear(3, 3)
    assert interpolated_source_logits(plain, joint, xs) is joint  # no batch-norm: Z' = Z''


@pytest.fixture(scope="module")
def pair():
    data = blob_data(offset=3.0, labels_per_class=0, unlabelled=150)
    source = train_classifier(mlp(), data.source_train, data.source_val,
                              TrainSettings(epochs=5, batch_size=32, min_steps_per_epoch=10)).model
    return source, data


def test_adamatch_beats_source_only_on_a_nuisance_shift(pair):
    source, data = pair
    result = get_method("adamatch")().fit(source, data, None, SETTINGS)
    test = blob_test(offset=3.0)
    assert accuracy(result.model, test) > accuracy(source, test) + 0.15
    assert "information maximisation (label-free)" in result.checkpoint_criterion
    assert result.history[-1]["mask_rate"] > 0.5


def test_adamatch_trains_lenet_on_augmented_images_and_is_reproducible():
    src, tgt = images("s", 90, 1), images("t", 60, 2, invert=True)
    data = AdaptationData(src, images("s-val", 30, 3), None, tgt)
    source = train_classifier(lenet(), src, data.source_val, TrainSettings(epochs=2, batch_size=16)).model
    short = TrainSettings(epochs=2, batch_size=16, min_steps_per_epoch=5)
    a = get_method("adamatch")().fit(source, data, {"target_ratio": 2}, short)
    b = get_method("adamatch")().fit(source, data, {"target_ratio": 2}, short)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(next(a.model.parameters()), next(source.parameters()))


def test_adamatch_returns_the_moving_average_of_its_weights_when_asked(pair):
    source, data = pair
    plain = get_method("adamatch")().fit(source, data, None, SETTINGS).model
    # α → 0: the average is the trained network after every step, so the same weights come back.
    tracking = get_method("adamatch")().fit(source, data, {"ema": 1e-12}, SETTINGS).model
    averaged = get_method("adamatch")().fit(source, data, {"ema": 0.9}, SETTINGS).model
    for p, t in zip(plain.parameters(), tracking.parameters()):
        assert torch.allclose(p, t, atol=1e-6)
    gaps = [(p - a).abs().max().item() for p, a in zip(plain.parameters(), averaged.parameters())]
    assert max(gaps) > 1e-4
    assert all(not p.requires_grad for p in averaged.parameters())
    test = blob_test(offset=3.0)
    assert accuracy(averaged, test) > accuracy(source, test) + 0.15


def test_adamatch_config_has_the_papers_threshold():
    cfg = get_method("adamatch").Config()
    assert (cfg.tau, cfg.trade_off, cfg.target_ratio, cfg.ema) == (0.9, 1.0, 1, 0.0)
