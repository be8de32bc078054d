import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from transferlab.errors import DataError
from transferlab.models import ModelSpec, build_model
from transferlab.validators import (
    deep_embedded_validation,
    density_ratio_weights,
    dev_risk,
    information_maximization,
    label_free_scores,
    soft_neighbourhood_density,
)

C, D = 3, 8
MEANS = np.random.default_rng(0).normal(0, 3, (C, D))


def _sample(n, shift, seed):
    r = np.random.default_rng(seed)
    y = r.integers(0, C, n)
    return (MEANS[y] + r.normal(0, 1, (n, D)) + shift).astype(np.float32), y


@pytest.fixture(scope="module")
def task():
    torch.set_num_threads(1)
    xs, ys = _sample(600, 0.0, 1)
    xv, yv = _sample(200, 0.0, 2)
    xt, yt = _sample(300, 0.5, 3)  # target: shifted, its labels are never given to a validator
    spec = ModelSpec(arch="mlp", input_dim=D, num_classes=C, hidden=16)
    untrained = build_model(spec, seed=0).eval()
    trained = build_model(spec, seed=0)
    opt = torch.optim.Adam(trained.parameters(), 1e-2)
    for step in range(150):
        idx = np.random.default_rng(step).integers(0, len(xs), 64)
        loss = torch.nn.functional.cross_entropy(trained(torch.tensor(xs[idx])), torch.tensor(ys[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    trained.eval()
    with torch.no_grad():
        assert (trained(torch.tensor(xt)).argmax(1).numpy() == yt).mean() > 0.9
    return xs, xv, yv, xt, trained, untrained


def test_each_validator_ranks_trained_above_untrained(task):
    xs, xv, yv, xt, trained, untrained = task
    good = label_free_scores(trained, xs, xv, yv, xt, seed=0)
    bad = label_free_scores(untrained, xs, xv, yv, xt, seed=0)
    for key in ("im", "snd", "dev", "entropy", "mixval", "reverse", "srcacc_im"):
        assert good[key] > bad[key], key
    assert good["dev_risk"] < bad["dev_risk"]
    assert good == label_free_scores(trained, xs, xv, yv, xt, seed=0)  # deterministic
    # Asked for some validators, it computes those alone, each the same number as among all.
    for some in (("im",), ("entropy", "mixval"), ("dev", "reverse"), ("srcacc_im", "snd")):
        alone = label_free_scores(trained, xs, xv, yv, xt, seed=0, validators=some)
        assert set(some) <= set(alone) <= set(some) | {"snd_paper", "dev_risk", "mixval_inter", "mixval_intra"}
        assert alone == {k: good[k] for k in alone}, some
    with pytest.raises(DataError):
        label_free_scores(trained, xs, xv, yv, xt, validators=("accuracy",))


def test_published_snd_blind_spot_and_centred_fix(task):
    # Saito et al.'s SND rewards near-identical outputs (untrained net: near-uniform softmax);
    # the centred variant does not. This is why ranking uses the centred one.
    xs, xv, yv, xt, trained, untrained = task
    with torch.no_grad():
        z_good, z_bad = trained(torch.tensor(xt)), untrained(torch.tensor(xt))
    assert soft_neighbourhood_density(z_bad) > soft_neighbourhood_density(z_good)
    assert soft_neighbourhood_density(z_bad, centre=True) < soft_neighbourhood_density(z_good, centre=True)
    same = np.ones((10, 4)) / 4
    assert soft_neighbourhood_density(same, from_logits=False) == pytest.approx(math.log(9))


def test_information_maximization_by_hand():
    onehot = np.eye(4)
    assert information_maximization(onehot, from_logits=False) == pytest.approx(math.log(4))
    assert information_maximization(np.tile([[0.7, 0.3]], (5, 1)), from_logits=False) == pytest.approx(0.0)
    # two samples [1,0] and [0.5,0.5]: H(mean=[.75,.25]) - (0 + log 2)/2
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) - math.log(2) / 2
    assert information_maximization(p, from_logits=False) == pytest.approx(expected)
    assert information_maximization(torch.tensor([[10.0, 0.0], [0.0, 10.0]])) == pytest.approx(math.log(2), abs=1e-3)


def test_snd_by_hand():
    # samples e1, e1, e2, e2 with tau = 1: each has one neighbour at similarity 1, two at 0.
    p = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    w = np.array([math.e, 1.0, 1.0]) / (math.e + 2)
    expected = -np.sum(w * np.log(w))
    assert soft_neighbourhood_density(p, temperature=1.0, from_logits=False) == pytest.approx(expected)


def test_dev_control_variate_by_hand():
    # Constant losses: L = w exactly, so Cov(L,w) = Var(w), eta = -1 and the risk is the loss, 1.
    risk, eta = dev_risk(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 1.0]))
    assert eta == pytest.approx(-1.0) and risk == pytest.approx(1.0)
    # Constant weights carry no information: plain weighted mean.
    risk, eta = dev_risk(np.array([1.0, 1.0, 1.0]), np.array([0.5, 1.0, 3.0]))
    assert eta == 0.0 and risk == pytest.approx(1.5)
    with pytest.raises(DataError, match="3 weights but 2 losses"):
        dev_risk(np.ones(3), np.ones(2))


def test_density_ratio_tracks_the_shift():
    r = np.random.default_rng(0)
    src, tgt_same, tgt_far = r.normal(0, 1, (400, 2)), r.normal(0, 1, (400, 2)), r.normal(2, 1, (400, 2))
    val = np.array([[2.0, 2.0], [-2.0, -2.0]])
    w_same, acc_same, _ = density_ratio_weights(src, tgt_same, val, seed=0)
    w_far, acc_far, _ = density_ratio_weights(src, tgt_far, val, seed=0)
    assert acc_far > 0.8 > acc_same
    assert w_far[0] > 10 * w_far[1]  # a validation point near the target counts far more
    res = deep_embedded_validation(src, tgt_far, src[:50], np.ones(50), seed=0)
    assert res.score == -res.risk and res.risk == pytest.approx(1.0, abs=1e-9)


def test_density_ratio_regularisation_is_chosen_by_held_out_log_loss():
    # Many feature dimensions, few samples, a small shift: large C overfits the domain label and
    # gives overconfident probabilities, so held-out log-loss (not accuracy) must pick C.
    r = np.random.default_rng(1)
    src, tgt = r.normal(0, 1, (200, 100)), r.normal(0, 1, (200, 100))
    tgt[:, 0] += 1.0
    _, _, chosen = density_ratio_weights(src, tgt, src[:10], seed=0)
    x = StandardScaler().fit_transform(np.concatenate([src, tgt]))
    d = np.r_[np.zeros(200, int), np.ones(200, int)]
    xtr, xte, dtr, dte = train_test_split(x, d, test_size=0.2, random_state=0, stratify=d)
    losses = {c: log_loss(dte, LogisticRegression(C=c, max_iter=1000).fit(xtr, dtr).predict_proba(xte)[:, 1])
              for c in (0.01, 0.1, 1.0, 10.0)}
    assert chosen == min(losses, key=losses.get)
    assert chosen < 10.0


def test_validator_input_errors():
    with pytest.raises(DataError, match="2-D"):
        information_maximization(np.ones(3))
    with pytest.raises(DataError, match="sum to one"):
        information_maximization(np.ones((2, 2)), from_logits=False)
    with pytest.raises(DataError, match="NaN"):
        soft_neighbourhood_density(np.array([[np.nan, 1.0], [0.0, 1.0]]))
    with pytest.raises(DataError, match="feature dimensions differ"):
        density_ratio_weights(np.ones((10, 2)), np.ones((10, 3)), np.ones((2, 2)))
