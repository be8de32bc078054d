import numpy as np
import pytest

from transferlab.errors import DataError
from transferlab.evaluation import (
    negative_transfer_verdict,
    paired_bootstrap_difference,
    selection_regret,
    summarise_runs,
    transfer_gain,
)


def _preds(acc: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # Same labels for every call (seed 0); the seed only moves which samples are wrong.
    y = np.random.default_rng(0).integers(0, 5, n)
    wrong = np.random.default_rng(seed).random(n) > acc
    return y, np.where(wrong, (y + 1) % 5, y)


def test_bootstrap_is_deterministic_for_a_seed_and_moves_with_it():
    y, a = _preds(0.8, 300, 1)
    _, b = _preds(0.7, 300, 2)
    r1 = paired_bootstrap_difference(y, a, b, n_boot=500, seed=3)
    r2 = paired_bootstrap_difference(y, a, b, n_boot=500, seed=3)
    r3 = paired_bootstrap_difference(y, a, b, n_boot=500, seed=4)
    assert r1 == r2
    assert (r1.ci_low, r1.ci_high) != (r3.ci_low, r3.ci_high)
    assert r1.estimate == pytest.approx(np.mean(a == y) - np.mean(b == y))
    assert r1.ci_low <= r1.estimate <= r1.ci_high


def test_identical_models_give_zero_width_interval():
    y, a = _preds(0.8, 100, 0)
    r = paired_bootstrap_difference(y, a, a, n_boot=200)
    assert r.estimate == r.ci_low == r.ci_high == 0.0


def test_pairing_makes_a_constant_gain_certain():
    # a is right exactly where b is right, plus on 10 more samples: d_i >= 0 everywhere.
    y = np.zeros(100, int)
    b = np.r_[np.zeros(50, int), np.ones(50, int)]
    a = np.r_[np.zeros(60, int), np.ones(40, int)]
    r = paired_bootstrap_difference(y, a, b, n_boot=1000, seed=0)
    assert r.estimate == pytest.approx(0.1)
    assert r.ci_low > 0


def test_seed_axis_averages_correctness():
    y = np.array([0, 1, 2, 3])
    a = np.array([[0, 1, 2, 3], [0, 1, 0, 0]])  # accuracies 1.0 and 0.5
    b = np.array([0, 0, 0, 0])  # 0.25
    r = paired_bootstrap_difference(y, a, b, n_boot=10)
    assert r.estimate == pytest.approx(0.75 - 0.25)
    with pytest.raises(DataError, match="pred_b"):
        paired_bootstrap_difference(y, a, np.zeros(3, int))


def test_verdicts_on_each_side_of_zero():
    y = np.zeros(200, int)
    good = np.r_[np.zeros(180, int), np.ones(20, int)]
    bad = np.r_[np.zeros(120, int), np.ones(80, int)]
    neg = negative_transfer_verdict(paired_bootstrap_difference(y, bad, good, seed=0), "dann", "source-only")
    assert neg.negative_transfer and neg.label == "negative-transfer"
    assert "dann" in neg.sentence and "source-only" in neg.sentence
    pos = negative_transfer_verdict(paired_bootstrap_difference(y, good, bad, seed=0))
    assert pos.label == "positive-transfer" and not pos.negative_transfer
    same = negative_transfer_verdict(paired_bootstrap_difference(y, good, good[::-1], seed=0))
    assert same.label == "no-significant-difference"


def test_transfer_gain_picks_best_baseline():
    y, chosen = _preds(0.9, 400, 5)
    _, weak = _preds(0.5, 400, 6)
    _, strong = _preds(0.85, 400, 7)
    g = transfer_gain(y, chosen, {"source-only": weak, "target-only": strong}, chosen="dann", n_boot=300)
    assert g["baseline"] == "target-only"
    assert g["estimate"] == pytest.approx(np.mean(chosen == y) - np.mean(strong == y))
    assert g["verdict"]["label"] in {"positive-transfer", "no-significant-difference"}
    with pytest.raises(DataError, match="at least one baseline"):
        transfer_gain(y, chosen, {})


def test_summaries_and_regret():
    s = summarise_runs([0.8, 0.9])
    assert s["mean"] == pytest.approx(0.85) and s["std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert summarise_runs([0.5])["std"] == 0.0
    r = selection_regret({"dann": 0.8, "cdan": 0.86, "source-only": 0.7}, "dann")
    assert r["oracle"] is True and r["best_candidate"] == "cdan"
    assert r["regret"] == pytest.approx(0.06)
    with pytest.raises(DataError, match="not among"):
        selection_regret({"a": 1.0}, "b")
