import numpy as np
import pytest
from sklearn.metrics import f1_score

from transferlab.errors import DataError
from transferlab.evaluation import (
    accuracy,
    classification_metrics,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
    per_class_accuracy,
    reliability_bins,
)

Y = np.array([0, 0, 1, 1, 2, 2])
P = np.array([0, 1, 1, 1, 0, 2])


def test_accuracy_and_confusion_by_hand():
    assert accuracy(Y, P) == pytest.approx(4 / 6)
    cm = confusion_matrix(Y, P, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_per_class_accuracy_marks_absent_class_nan():
    acc = per_class_accuracy(Y, P, 4)
    assert acc[:3].tolist() == [0.5, 1.0, 0.5]
    assert np.isnan(acc[3])


def test_macro_f1_by_hand_and_against_sklearn():
    # class 0: P=1/2 R=1/2 F1=1/2; class 1: P=2/3 R=1 F1=0.8; class 2: P=1 R=1/2 F1=2/3
    assert macro_f1(Y, P, 3) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 5, 200), rng.integers(0, 4, 200)
    assert macro_f1(y, p, 5) == pytest.approx(f1_score(y, p, average="macro"))


def test_ece_by_hand():
    # confidences 0.9 (correct), 0.9 (wrong), 0.6 (correct), 0.55 (correct) with 10 bins:
    # bin (0.8,0.9]: acc 0.5 conf 0.9 -> 2/4 * 0.4; bin (0.5,0.6]: acc 1 conf 0.575 -> 2/4 * 0.425
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.45, 0.55]])
    y = np.array([0, 1, 1, 1])
    assert expected_calibration_error(probs, y, n_bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.425)


def test_ece_zero_when_perfectly_calibrated_and_fifteen_bins_default():
    probs = np.tile([[1.0, 0.0]], (5, 1))
    assert expected_calibration_error(probs, np.zeros(5, int)) == 0.0
    bins = reliability_bins(probs, np.zeros(5, int))
    assert bins.counts.size == 15 and bins.counts[-1] == 5


def test_classification_metrics_bundle():
    probs = np.eye(3)[P] * 0.7 + 0.1
    m = classification_metrics(Y, probs, ("a", "b", "c"))
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class_accuracy"] == {"a": 0.5, "b": 1.0, "c": 0.5}
    assert m["confusion_matrix"][2] == [1, 0, 1]
    assert m["ece"] == pytest.approx(abs(0.8 - 4 / 6))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(DataError, match="6 labels but y_pred has 5"):
        accuracy(Y, P[:5])
    with pytest.raises(DataError, match="empty"):
        accuracy([], [])
    with pytest.raises(DataError, match="out of range"):
        confusion_matrix(Y, P, 2)
    with pytest.raises(DataError, match="columns"):
        classification_metrics(Y, np.ones((6, 2)) / 2, ("a", "b", "c"))
