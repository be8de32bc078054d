"""Entropy, MixVal, reverse validation and SRC+IM on hand-made cases where the theory says which
model must score higher, and pinned to values computed by hand."""

import math

import numpy as np
import pytest

from transferlab.errors import DataError
from transferlab.probe_validators import (
    MIXVAL_LAMBDA,
    mixval,
    mixval_pairs,
    prediction_entropy,
    probe_scores,
    reverse_validation,
    source_accuracy_with_im,
)


def test_prediction_entropy_by_hand():
    p = np.array([[0.5, 0.5], [1.0, 0.0], [0.25, 0.75]])
    by_hand = (math.log(2) + 0 + -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))) / 3
    assert prediction_entropy(p, from_logits=False) == pytest.approx(by_hand, rel=1e-9)
    confident = np.array([[8.0, 0.0], [0.0, 8.0]])
    unsure = np.array([[0.3, 0.0], [0.0, 0.3]])
    assert prediction_entropy(confident) < prediction_entropy(unsure)  # lower is better


def _threshold_model(t: float, k: float = 20.0):
    """1-D inputs: class 1 right of ``t`` (logits [0, k (x − t)])."""
    return lambda x: np.stack([np.zeros(len(x)), k * (x[:, 0] - t)], axis=1)


X_TWO = np.array([-1.0] * 6 + [1.0] * 6)[:, None]


def test_mixval_inter_probe_finds_the_boundary_between_clusters():
    # Both models label the two clusters alike; only the good one puts the boundary between them.
    # x̃ = 0.55 (−1) + 0.45 (+1) = −0.1 and 0.55 (+1) + 0.45 (−1) = +0.1.
    good = mixval(_threshold_model(0.0), X_TWO, seed=3)
    bad = mixval(_threshold_model(-0.5), X_TWO, seed=3)  # −0.1 lands on class 1: class-0-dominant mixes fail
    assert good["mixval_inter"] == 1.0
    pseudo = (X_TWO[:, 0] > 0).astype(int)
    inter, _ = mixval_pairs(pseudo, np.random.default_rng(3))
    assert len(inter) > 0
    assert bad["mixval_inter"] == pytest.approx(np.mean(pseudo[inter[:, 0]] == 1))  # only class-1-dominant right
    assert bad["mixval"] < good["mixval"]
    assert good["mixval"] == pytest.approx(0.5 * (good["mixval_inter"] + good["mixval_intra"]))
    # The caller's logits of x stand for the pass over x: the same probes.
    assert mixval(_threshold_model(-0.5), X_TWO, seed=3, logits=_threshold_model(-0.5)(X_TWO)) == bad


def test_mixval_intra_probe_finds_a_hole_inside_a_cluster():
    # Class 0 at −1 and −3, class 1 at +1. The bad model calls the gap (−2.5, −1.5) class 1:
    # an intra-cluster mix of −1 and −3 (−1.9 or −2.1) falls in it.
    x = np.array([-1.0] * 4 + [-3.0] * 4 + [1.0] * 4)[:, None]

    def holed(z):
        logits = _threshold_model(0.0)(z)
        hole = (z[:, 0] > -2.5) & (z[:, 0] < -1.5)
        logits[hole, 1] = 50.0
        return logits

    good, bad = mixval(_threshold_model(0.0), x, seed=0), mixval(holed, x, seed=0)
    assert good["mixval_intra"] == 1.0
    assert bad["mixval_intra"] < 1.0
    pseudo = (x[:, 0] > 0).astype(int)
    _, intra = mixval_pairs(pseudo, np.random.default_rng(0))
    mixed = MIXVAL_LAMBDA * x[intra[:, 0], 0] + (1 - MIXVAL_LAMBDA) * x[intra[:, 1], 0]
    assert bad["mixval_intra"] == pytest.approx(np.mean(~((mixed > -2.5) & (mixed < -1.5))))


def test_mixval_pairs_respect_the_pseudo_labels():
    pseudo = np.array([0, 0, 1, 1, 1, 2])
    inter, intra = mixval_pairs(pseudo, np.random.default_rng(0))
    assert np.all(pseudo[inter[:, 0]] != pseudo[inter[:, 1]])
    assert np.all(pseudo[intra[:, 0]] == pseudo[intra[:, 1]])
    assert sorted(intra[:, 0]) == [0, 1, 2, 3, 4]  # the lone class-2 sample has no intra partner
    collapsed = mixval(lambda z: np.tile([5.0, 0.0], (len(z), 1)), X_TWO)
    assert collapsed["mixval_inter"] == 0.0  # no boundary at all: the collapse MixVal exposes
    # Every pseudo-label different: no intra pair, nothing contradicts the clusters (intra = 1).
    x3 = np.array([[-1.0], [0.5], [2.0]])
    distinct = mixval(lambda z: np.stack([-z[:, 0], np.zeros(len(z)), z[:, 0] - 1], axis=1), x3)
    assert distinct["mixval_intra"] == 1.0


def test_reverse_validation_rewards_pseudo_labels_consistent_with_the_source():
    r = np.random.default_rng(0)
    y_val = np.repeat([0, 1], 20)
    f_val = np.c_[np.where(y_val == 1, 2.0, -2.0) + r.normal(0, 0.3, 40), r.normal(0, 1, 40)]
    y_t = np.repeat([0, 1], 30)
    f_t = np.c_[np.where(y_t == 1, 2.0, -2.0) + r.normal(0, 0.3, 60), r.normal(0, 1, 60)]
    right = np.eye(2)[y_t] * 5
    swapped = np.eye(2)[1 - y_t] * 5
    assert reverse_validation(f_t, right, f_val, y_val) == 1.0
    assert reverse_validation(f_t, swapped, f_val, y_val) == 0.0
    one_class = np.tile([5.0, 0.0], (60, 1))
    assert reverse_validation(f_t, one_class, f_val, y_val) == 0.5  # predicts class 0 everywhere
    assert reverse_validation(f_t, one_class, f_val[:30], y_val[:30]) == pytest.approx(20 / 30)  # 20 of 30 are 0


def test_source_accuracy_with_im_by_hand():
    assert source_accuracy_with_im(0.8, math.log(2) / 2, 2) == pytest.approx(0.5 * (0.8 + 0.5))
    logits = np.array([[4.0, 0.0], [0.0, 4.0]])
    f = np.array([[-1.0, 0.0], [1.0, 0.0], [-1.2, 0.1], [1.1, 0.0]])
    s = probe_scores(_threshold_model(0.0), X_TWO[[0, 6]], logits, f[:2], f[2:], logits, np.array([0, 0]))
    p = np.exp(4) / (1 + np.exp(4))
    h = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    assert s["entropy"] == pytest.approx(-h)
    assert s["srcacc_im"] == pytest.approx(0.5 * (0.5 + (math.log(2) - h) / math.log(2)))
    right = probe_scores(_threshold_model(0.0), X_TWO[[0, 6]], logits, f[:2], f[2:], logits, np.array([0, 1]))
    assert right["srcacc_im"] == pytest.approx(0.5 * (1.0 + (math.log(2) - h) / math.log(2)))  # both right
    with pytest.raises(DataError):
        source_accuracy_with_im(1.5, 0.1, 2)
    with pytest.raises(DataError):
        mixval(_threshold_model(0.0), X_TWO, lam=0.4)
