import numpy as np
import pytest
import torch

from transferlab.errors import ConfigError, DataError
from transferlab.similarity import mmd2_statistic, mmd_test


def reference_mmd2(x, y, bandwidths):
    """Plain float64 unbiased MMD² with the averaged Gaussian kernel family."""
    def k(a, b):
        d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return sum(np.exp(-d / (2 * s ** 2)) for s in bandwidths) / len(bandwidths)
    n, m = len(x), len(y)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_float64_reference(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(80, 6)), rng.normal(0.3, 1.2, size=(65, 6))
    result = mmd_test(x, y, n_permutations=20, seed=seed, block_size=32)
    assert result.mmd2 == pytest.approx(reference_mmd2(x, y, result.bandwidths), rel=1e-6)
    assert mmd2_statistic(x, y, seed=seed) == pytest.approx(result.mmd2, rel=1e-9)


def test_same_distribution_gives_small_statistic_and_uniform_ish_p():
    p_values = []
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        r = mmd_test(rng.normal(size=(60, 4)), rng.normal(size=(60, 4)), n_permutations=99, seed=seed,
                     n_bootstrap=0)
        p_values.append(r.p_value)
        assert abs(r.mmd2) < 0.05
    p = np.array(p_values)
    assert 0.25 < p.mean() < 0.75
    assert (p < 0.05).sum() <= 3


def test_shifted_distributions_give_large_statistic_and_small_p():
    rng = np.random.default_rng(0)
    r = mmd_test(rng.normal(size=(150, 5)), rng.normal(1.0, 1.0, size=(150, 5)), n_permutations=200)
    assert r.mmd2 > 0.05 and r.p_value == pytest.approx(1 / 201)
    assert r.ci[0] > 0 and r.ci[0] <= r.mmd2 <= r.ci[1]
    assert 0 < r.normalised <= 1


def test_invariant_to_sample_order_and_deterministic_for_a_seed():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(70, 3)), rng.normal(0.2, 1, size=(50, 3))
    a = mmd_test(x, y, seed=5, n_permutations=50)
    b = mmd_test(x[::-1].copy(), y[rng.permutation(50)], seed=5, n_permutations=50)
    c = mmd_test(x, y, seed=5, n_permutations=50)
    assert a.mmd2 == pytest.approx(b.mmd2, rel=1e-9)
    assert a.p_value == c.p_value and np.array_equal(a.null, c.null)


def test_blocked_kernel_equals_unblocked():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(90, 8)), rng.normal(size=(70, 8)) + 0.1
    small = mmd_test(x, y, seed=0, n_permutations=30, block_size=16)
    whole = mmd_test(x, y, seed=0, n_permutations=30, block_size=10_000)
    assert small.mmd2 == pytest.approx(whole.mmd2, rel=1e-10)
    assert np.allclose(small.null, whole.null)


def test_linear_estimator_detects_shift_and_auto_picks_by_size():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(2000, 4)), rng.normal(0.5, 1, size=(2000, 4))
    lin = mmd_test(x, y, estimator="linear")
    assert lin.estimator == "linear" and lin.p_value < 1e-3 and lin.mmd2 > 0
    assert mmd_test(x[:100], y[:100], n_permutations=10).estimator == "quadratic"


def test_accepts_tensors_and_constant_features_do_not_give_nan():
    x = torch.zeros(20, 3)
    y = torch.zeros(25, 3)
    r = mmd_test(x, y, n_permutations=10)
    assert np.isfinite(r.mmd2) and np.isfinite(r.p_value)


@pytest.mark.parametrize("x, y, message", [
    (np.zeros((1, 3)), np.zeros((5, 3)), "at least 2 samples"),
    (np.zeros((5, 3)), np.zeros((5, 4)), "same number of features"),
    (np.zeros(5), np.zeros((5, 1)), "2-D"),
    (np.full((5, 2), np.nan), np.zeros((5, 2)), "NaN"),
])
def test_clear_errors(x, y, message):
    with pytest.raises(DataError, match=message):
        mmd_test(x, y)


def test_bad_estimator_is_a_config_error():
    with pytest.raises(ConfigError):
        mmd_test(np.zeros((4, 2)), np.ones((4, 2)), estimator="cubic")


def test_non_geometric_bandwidths_and_uneven_blocks_match_reference():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(53, 5)), rng.normal(0.4, 1.0, size=(47, 5))
    r = mmd_test(x, y, n_permutations=10, kernel_mults=(0.3, 1.0, 3.7), block_size=7)
    assert r.mmd2 == pytest.approx(reference_mmd2(x, y, r.bandwidths), rel=1e-6)
    whole = mmd_test(x, y, n_permutations=10, kernel_mults=(0.3, 1.0, 3.7), block_size=1000)
    assert np.allclose(r.null, whole.null, rtol=1e-9)


def test_float32_path_agrees_with_float64():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(300, 32)), rng.normal(0.15, 1.0, size=(280, 32))
    r64 = mmd_test(x, y, n_permutations=50, seed=3)
    r32 = mmd_test(x, y, n_permutations=50, seed=3, dtype="float32")
    assert r32.dtype == "float32" and r64.dtype == "float64"
    assert r32.mmd2 == pytest.approx(r64.mmd2, rel=1e-4)
    assert r32.p_value == r64.p_value
    assert np.allclose(r32.null, r64.null, atol=1e-6)


def test_asymptotic_ci_agrees_with_bootstrap_and_shrinks_with_n():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(400, 3)), rng.normal(0.5, 1.0, size=(400, 3))
    asym = mmd_test(x, y, n_permutations=50)
    boot = mmd_test(x, y, n_permutations=50, n_bootstrap=300)
    assert asym.ci_method.startswith("asymptotic") and boot.ci_method.startswith("bootstrap")
    for r in (asym, boot):
        assert r.ci[0] < r.mmd2 < r.ci[1]
    width_a, width_b = asym.ci[1] - asym.ci[0], boot.ci[1] - boot.ci[0]
    assert 0.5 < width_a / width_b < 2.0
    small = mmd_test(x[:100], y[:100], n_permutations=50)
    assert small.ci[1] - small.ci[0] > 1.5 * width_a


def test_bad_parameters_are_config_errors():
    x, y = np.zeros((4, 2)), np.ones((4, 2))
    for kwargs in ({"dtype": "float16"}, {"n_bootstrap": -1}, {"kernel_mults": (1.0, -2.0)},
                   {"confidence": 1.5}, {"n_permutations": 0}):
        with pytest.raises(ConfigError):
            mmd_test(x, y, **kwargs)
    with pytest.raises(DataError, match="same number of features"):
        mmd2_statistic(np.zeros((4, 2)), np.zeros((4, 3)))
