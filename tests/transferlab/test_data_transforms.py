import numpy as np
import pytest

from transferlab.data import (Domain, DomainSpec, ShiftSpec, apply_shift, harmonise, load_domain, split_source,
                              split_target, stratified_subsample)
from transferlab.errors import DataError

SHIFTS = ["colour-background", "invert", "rotate", "blur", "noise", "rescale"]


@pytest.fixture(scope="module")
def digits():
    return harmonise(load_domain(DomainSpec(name="uci-digits", max_samples=200)), 16, 1)


@pytest.mark.parametrize("name", SHIFTS)
def test_shift_is_deterministic_bounded_and_grows_with_severity(digits, name):
    weak = apply_shift(digits, ShiftSpec(name=name, severity=0.2, seed=3))
    strong = apply_shift(digits, ShiftSpec(name=name, severity=0.9, seed=3))
    again = apply_shift(digits, ShiftSpec(name=name, severity=0.9, seed=3))
    assert np.array_equal(strong.x, again.x)
    assert strong.x.min() >= 0 and strong.x.max() <= 1 and strong.x.dtype == np.float32
    base = np.repeat(digits.x, strong.x.shape[1], axis=1)
    d_weak, d_strong = np.abs(weak.x - base).mean(), np.abs(strong.x - base).mean()
    assert d_strong > d_weak > 0
    assert np.array_equal(strong.y, digits.y)


@pytest.mark.parametrize("name", ["invert", "rotate", "blur", "noise", "rescale"])
def test_severity_zero_is_identity(digits, name):
    assert np.allclose(apply_shift(digits, ShiftSpec(name=name, severity=0.0)).x, digits.x, atol=1e-5)


def test_colour_background_makes_rgb_and_seed_matters(digits):
    a = apply_shift(digits, ShiftSpec(name="colour-background", severity=1.0, seed=0))
    b = apply_shift(digits, ShiftSpec(name="colour-background", severity=1.0, seed=1))
    assert a.x.shape[1] == 3 and not np.array_equal(a.x, b.x)


def test_image_shifts_refuse_feature_vectors():
    vectors = Domain("v", np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1]), ("a", "b"))
    with pytest.raises(DataError, match="needs images"):
        apply_shift(vectors, ShiftSpec(name="rotate"))
    assert apply_shift(vectors, ShiftSpec(name="noise")).x.shape == (4, 3)


def test_harmonise_sizes_and_channels(digits):
    rgb = harmonise(digits, 28, 3)
    assert rgb.x.shape == (len(digits), 3, 28, 28)
    assert np.allclose(rgb.x[:, 0], rgb.x[:, 1])
    grey = harmonise(rgb, 28, 1)
    assert grey.x.shape == (len(digits), 1, 28, 28)
    assert np.allclose(grey.x[:, 0], rgb.x[:, 0], atol=1e-5)


def test_source_split_is_stratified_disjoint_and_seeded(digits):
    train, val = split_source(digits, 0.25, seed=0)
    assert len(train) + len(val) == len(digits)
    assert (val.class_counts() >= 1).all()
    assert np.allclose(val.class_counts() / digits.class_counts(), 0.25, atol=0.15)
    train2, val2 = split_source(digits, 0.25, seed=0)
    assert np.array_equal(val.x, val2.x)
    _, val3 = split_source(digits, 0.25, seed=1)
    assert not np.array_equal(val.x, val3.x)


def _rows(domain):
    return {row.tobytes() for row in domain.x.reshape(len(domain), -1)}


def test_target_split_k_per_class_disjoint_and_test_stable_across_seeds(digits):
    a = split_target(digits, 3, 0.3, seed=0)
    b = split_target(digits, 5, 0.3, seed=7)
    assert a.labelled.class_counts().tolist() == [3] * 10
    assert len(a.labelled) + len(a.unlabelled) + len(a.test) == len(digits)
    assert not (_rows(a.test) & (_rows(a.labelled) | _rows(a.unlabelled)))
    assert np.array_equal(a.test.x, b.test.x), "test membership depends on content only"
    assert 0.15 < len(a.test) / len(digits) < 0.45
    grown = split_target(harmonise(load_domain(DomainSpec(name="uci-digits", max_samples=400)), 16, 1), 0, 0.3, 0)
    shared = _rows(a.test) & (_rows(grown.test) | _rows(grown.unlabelled))
    assert shared and shared <= _rows(grown.test), "a test sample stays in test when the dataset grows"


def test_target_split_errors(digits):
    with pytest.raises(DataError, match="fewer than the 100 labelled"):
        split_target(digits, 100, 0.3, seed=0)
    with pytest.raises(DataError, match="test fraction"):
        split_target(digits, 0, 1.5, seed=0)


def test_stratified_subsample_keeps_proportions(digits):
    sub = stratified_subsample(digits, 50, seed=0)
    assert len(sub) == 50
    assert np.abs(sub.class_counts() - digits.class_counts() * 50 / len(digits)).max() <= 1
