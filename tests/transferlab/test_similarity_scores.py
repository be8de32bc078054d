import numpy as np
import pytest

from transferlab.similarity import coral_distance, h_score, leep, logme, nce, proxy_a_distance


def test_leep_hand_checked():
    theta = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    y = np.array([0, 1, 0])
    joint = np.zeros((2, 2))
    for t, label in zip(theta, y):
        joint[label] += t / 3
    cond = joint / joint.sum(0)
    expected = np.mean([np.log(theta[i] @ cond[y[i]]) for i in range(3)])
    assert leep(theta, y) == pytest.approx(expected)
    assert leep(theta, y) <= 0


def test_nce_is_zero_when_predictions_determine_labels_and_negative_otherwise():
    assert nce(np.array([1, 1, 0, 0]), np.array([0, 0, 1, 1])) == pytest.approx(0.0)
    assert nce(np.array([0, 0, 0, 0]), np.array([0, 1, 0, 1])) == pytest.approx(-np.log(2))


def test_h_score_prefers_discriminative_features():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    good = np.c_[y * 3.0 + rng.normal(size=200), rng.normal(size=200)]
    bad = rng.normal(size=(200, 2))
    assert h_score(good, y) > h_score(bad, y) + 0.5


def test_logme_prefers_discriminative_features():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 60)
    good = np.eye(3)[y] * 4 + rng.normal(size=(180, 3)) * 0.3
    bad = rng.normal(size=(180, 3))
    assert logme(good, y) > logme(bad, y)


def test_a_distance_and_coral():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    assert proxy_a_distance(x, rng.normal(size=(300, 5))) < 0.4
    assert proxy_a_distance(x, rng.normal(3, 1, size=(300, 5))) > 1.8
    assert coral_distance(x, x) == 0
    assert coral_distance(x, x * 3) > coral_distance(x, x * 1.1) > 0


def _log_evidence(f, t, alpha, beta):
    """Bayesian linear regression t ~ N(f w, 1/β), w ~ N(0, 1/α I): the log marginal likelihood,
    written directly from its definition (You et al., 2021, eq. 2) with dense matrices."""
    n, d = f.shape
    cov = np.eye(n) / beta + f @ f.T / alpha
    sign, logdet = np.linalg.slogdet(cov)
    return -0.5 * (n * np.log(2 * np.pi) + logdet + t @ np.linalg.solve(cov, t))


def test_logme_equals_the_maximised_evidence_of_its_definition():
    from scipy.optimize import minimize

    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 12)
    f = np.c_[y * 2.0 + rng.normal(size=24), rng.normal(size=(24, 2))]
    per_class = []
    for c in (0, 1):
        t = (y == c).astype(float)
        best = minimize(lambda p: -_log_evidence(f, t, np.exp(p[0]), np.exp(p[1])), x0=[0.0, 0.0],
                        method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000})
        per_class.append(-best.fun / len(f))
    assert logme(f, y) == pytest.approx(np.mean(per_class), abs=1e-4)


def test_h_score_hand_checked():
    f = np.array([[1.0, 0.0], [3.0, 1.0], [0.0, 2.0], [4.0, 5.0]])
    y = np.array([0, 0, 1, 1])
    centred = f - f.mean(0)
    cov_f = centred.T @ centred / 4
    class_means = np.array([centred[y == label].mean(0) for label in y])
    cov_g = class_means.T @ class_means / 4
    assert h_score(f, y) == pytest.approx(np.trace(np.linalg.inv(cov_f) @ cov_g), rel=1e-5)
