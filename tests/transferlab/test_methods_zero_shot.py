"""Zero-shot methods: ESZSL's closed form against a direct solve and its objective's gradient, DAP's
scores by hand, the saved model, and the guarantee that no unseen-class label reaches a fit."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from transferlab.data.types import Domain
from transferlab.errors import MethodRequirementError
from transferlab.evaluation.zero_shot import harmonic_mean, zero_shot_scores
from transferlab.methods import AdaptationData, get_method
from transferlab.methods import dap as dap_module
from transferlab.methods import eszsl as eszsl_module
from transferlab.methods.dap import binarise, dap_head, dap_log_scores
from transferlab.methods.eszsl import choose_gamma_lambda, eszsl_closed_form, indicators
from transferlab.methods.zero_shot import class_folds
from transferlab.models import ModelSpec, build_model, load_model, save_model
from transferlab.training import TrainSettings, predict_logits, train_classifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zero_shot_domains import CLASSES, SEEN, UNSEEN, attribute_domain, table

# --------------------------------------------------------------------------- ESZSL's closed form

def _eszsl_case():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 8))                      # d = 3 features, m = 8 samples
    y = indicators(np.array([0, 1, 2, 0, 1, 2, 0, 1]), 3)
    s = rng.normal(size=(4, 3))                      # a = 4 attributes, z = 3 classes
    return x, y, s, 0.7, 0.3


def test_eszsl_indicators_are_plus_minus_one():
    assert indicators(np.array([1, 0]), 3).tolist() == [[-1, 1, -1], [1, -1, -1]]


def test_eszsl_closed_form_equals_a_direct_solve_of_the_normal_equations():
    x, y, s, gamma, lam = _eszsl_case()
    # (X Xᵀ + γI) V (S Sᵀ + λI) = X Y Sᵀ, column-major vec: ((S Sᵀ + λI) ⊗ (X Xᵀ + γI)) vec V = vec(X Y Sᵀ)
    a_left = x @ x.T + gamma * np.eye(3)
    a_right = s @ s.T + lam * np.eye(4)
    vec = np.linalg.solve(np.kron(a_right.T, a_left), (x @ y @ s.T).flatten(order="F"))
    expected = vec.reshape((3, 4), order="F")
    np.testing.assert_allclose(eszsl_closed_form(x, y, s, gamma, lam), expected, rtol=1e-10, atol=1e-12)


def test_the_gradient_of_the_eszsl_objective_is_zero_at_the_closed_form():
    x, y, s, gamma, lam = (torch.from_numpy(a) if isinstance(a, np.ndarray) else a for a in _eszsl_case())
    v = torch.from_numpy(eszsl_closed_form(x.numpy(), y.numpy(), s.numpy(), gamma, lam)).requires_grad_(True)
    # Romera-Paredes & Torr 2015, eq. 5 with β = γλ
    objective = ((x.T @ v @ s - y) ** 2).sum() + gamma * ((v @ s) ** 2).sum() + lam * ((x.T @ v) ** 2).sum() \
        + gamma * lam * (v ** 2).sum()
    objective.backward()
    assert v.grad.abs().max().item() < 1e-9
    # and it is a minimum: a nudge raises the objective
    with torch.no_grad():
        nudged = ((x.T @ (v + 1e-3) @ s - y) ** 2).sum() + gamma * (((v + 1e-3) @ s) ** 2).sum() \
            + lam * ((x.T @ (v + 1e-3)) ** 2).sum() + gamma * lam * ((v + 1e-3) ** 2).sum()
    assert nudged.item() > objective.item()


def test_class_folds_hold_out_at_least_two_classes_and_leave_two():
    folds = class_folds(7, 3, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(7)) and min(len(f) for f in folds) >= 2
    assert class_folds(3, 3, seed=0) == []  # too few seen classes: no folds, defaults are used


def test_gamma_lambda_are_chosen_on_seen_classes_only():
    d = attribute_domain("s", 240, 1, SEEN)
    x, sig = d.x.astype(np.float64), table().signatures(SEEN)
    gamma, lam, score, grid = choose_gamma_lambda(x, d.y, sig, [0.1, 10.0], 3, seed=0)
    assert gamma in (0.1, 10.0) and lam in (0.1, 10.0) and len(grid) == 4
    assert score == max(g["accuracy"] for g in grid) and score > 0.5
    # each grid score is the mean over the folds of a plain fit on the other seen classes (the
    # eigendecomposition shortcut changes nothing)
    for g in grid:
        accs = []
        for held in class_folds(len(SEEN), 3, seed=0):
            train = np.setdiff1d(np.arange(len(SEEN)), held)
            rows, val = np.isin(d.y, train), np.isin(d.y, held)
            v = eszsl_closed_form(x[rows].T, indicators(np.searchsorted(train, d.y[rows]), len(train)),
                                  sig[train].T, g["gamma"], g["lam"])
            accs.append(((x[val] @ v @ sig[held].T).argmax(1) == np.searchsorted(held, d.y[val])).mean())
        assert g["accuracy"] == pytest.approx(np.mean(accs), abs=1e-12)


# --------------------------------------------------------------------------- DAP

def test_dap_scores_by_hand():
    log_p1, log_p0 = np.log([[0.8, 0.3]]), np.log([[0.2, 0.7]])
    signatures = np.array([[1, 0], [0, 1], [1, 1]], dtype=float)
    prior = np.array([0.5, 0.25])
    expected = np.log([[0.8 * 0.7 / (0.5 * 0.75), 0.2 * 0.3 / (0.5 * 0.25), 0.8 * 0.3 / (0.5 * 0.25)]])
    np.testing.assert_allclose(dap_log_scores(log_p1, log_p0, signatures, prior), expected, rtol=1e-12)
    # an attribute switched off (constant over the seen classes) leaves only the other's ratio
    masked = dap_log_scores(log_p1, log_p0, signatures, prior, mask=np.array([1.0, 0.0]))
    np.testing.assert_allclose(masked, np.log([[0.8 / 0.5, 0.2 / 0.5, 0.8 / 0.5]]), rtol=1e-12)


def test_dap_binarises_a_continuous_table_at_the_attribute_mean():
    assert binarise(np.array([[0.2, 5.0], [0.9, 1.0], [0.4, 3.5]])).tolist() == [[0, 1], [1, 0], [0, 1]]
    assert binarise(np.array([[0.0, 1.0], [1.0, 0.0]])).tolist() == [[0, 1], [1, 0]]


def test_the_dap_model_is_its_formula_and_survives_saving(tmp_path):
    torch.manual_seed(0)
    spec = ModelSpec(arch="mlp", input_dim=6, hidden=8, num_classes=3, classes=["x", "y", "z"], attribute_block=2)
    model = build_model(spec, seed=0).eval()
    sig, prior = np.array([[1, 0], [0, 1], [1, 1]], dtype=float), np.array([0.5, 0.25])
    w, b = dap_head(sig, prior)
    with torch.no_grad():
        model.head.weight.copy_(torch.from_numpy(w))
        model.head.bias.copy_(torch.from_numpy(b))
    x = torch.randn(5, 6)
    with torch.no_grad():
        z = model.blocks[-1].linear(model.prefix(len(model.blocks) - 1, x).flatten(1)).double()
        expected = dap_log_scores(torch.sigmoid(z).log().numpy(), torch.sigmoid(-z).log().numpy(), sig, prior)
        np.testing.assert_allclose(model(x).double().numpy(), expected, rtol=1e-5, atol=1e-5)
        save_model(model, tmp_path / "m")
        np.testing.assert_array_equal(load_model(tmp_path / "m")(x).numpy(), model(x).numpy())


# --------------------------------------------------------------------------- fitted on tiny data

@pytest.fixture(scope="module")
def world():
    source = attribute_domain("source", 360, 1, SEEN)
    val = attribute_domain("source-val", 60, 2, SEEN)
    spec = ModelSpec(arch="mlp", input_dim=6, hidden=32, num_classes=6, classes=list(SEEN))
    model = train_classifier(build_model(spec, seed=0), source, val, TrainSettings(epochs=5, batch_size=32, seed=0)).model
    pool = attribute_domain("pool", 40, 3)
    return model, AdaptationData(source, val, None, pool, class_attributes=table()), attribute_domain("test", 400, 4)


@pytest.mark.parametrize("name", ["eszsl", "dap"])
def test_unseen_classes_are_recognised_through_their_attributes(world, name):
    model, data, test = world
    fitted = get_method(name)().fit(model, data, {}, TrainSettings(seed=0)).model
    assert fitted.classes == CLASSES
    scores = zero_shot_scores(predict_logits(fitted, test.x), test.y, CLASSES, SEEN)
    assert scores["unseen_classes"] == list(UNSEEN) and scores["chance"] == 0.5
    assert scores["unseen"] > 0.9


def test_the_fitted_dap_head_takes_its_priors_from_the_seen_classes_alone(world):
    model, data, _ = world
    head = get_method("dap")().fit(model, data, {}, TrainSettings(seed=0)).model.head
    # π over the seen rows c0..c5 of zero_shot_domains.ROWS (over all 8 rows it would be 1/4, 3/8, 3/8, 1/2)
    prior = np.array([1 / 6, 2 / 6, 2 / 6, 3 / 6])
    a = table().signatures(CLASSES)
    expected_b = -(a @ np.log(prior) + (1 - a) @ np.log(1 - prior))
    np.testing.assert_allclose(head.bias.detach().double().numpy(), expected_b, rtol=1e-6)
    np.testing.assert_array_equal(head.weight.detach().numpy(), np.concatenate([a, 1 - a], axis=1))


@pytest.mark.parametrize("name", ["eszsl", "dap"])
def test_a_zero_shot_fit_never_sees_a_label_of_an_unseen_class(world, name, monkeypatch):
    model, data, _ = world
    module = {"eszsl": eszsl_module, "dap": dap_module}[name]
    seen_by_fit = []
    real = module.seen_training_set

    def spy(m, d):
        x, y, classes = real(m, d)
        seen_by_fit.append((set(np.asarray(classes)[np.unique(y)]), set(classes)))
        return x, y, classes
    monkeypatch.setattr(module, "seen_training_set", spy)
    head = get_method(name)().fit(model, data, {}, TrainSettings(seed=0)).model.state_dict()
    assert seen_by_fit and all(not (used | every) & set(UNSEEN) for used, every in seen_by_fit)
    # The target pool's rows and labels do not matter: delete the unseen classes' rows and scramble
    # every label that is left, and the fitted model is the same to the bit.
    pool = data.target_unlabelled
    keep = np.flatnonzero(np.isin(pool.y, [CLASSES.index(c) for c in SEEN]))
    stripped = Domain("pool", pool.x[keep], np.zeros(len(keep), dtype=np.int64), pool.classes)
    other = AdaptationData(data.source_train, data.source_val, None, stripped, class_attributes=data.class_attributes)
    again = get_method(name)().fit(model, other, {}, TrainSettings(seed=0)).model.state_dict()
    assert all(torch.equal(head[k], again[k]) for k in head)


def test_zero_shot_methods_refuse_without_a_table(world):
    model, data, _ = world
    bare = AdaptationData(data.source_train, data.source_val, None, data.target_unlabelled)
    with pytest.raises(MethodRequirementError, match="data.attributes"):
        get_method("eszsl")().fit(model, bare, {}, TrainSettings(seed=0))


def test_zero_shot_scores_by_hand():
    # classes s0, s1 seen, u0, u1 unseen; per-class mean accuracy
    classes, seen = ["s0", "s1", "u0", "u1"], ["s0", "s1"]
    y = np.array([0, 1, 2, 2, 3, 3])
    scores = np.array([[9, 0, 1, 0], [0, 0, 1, 9],     # s0 right; s1 predicted u1 (GZSL wrong)
                       [9, 0, 5, 1], [0, 0, 5, 9],     # u0: among unseen right, wrong; GZSL: s0, u1
                       [0, 0, 0, 9], [0, 0, 9, 1]], dtype=float)  # u1: right, wrong
    out = zero_shot_scores(scores, y, classes, seen)
    assert out["unseen"] == pytest.approx((0.5 + 0.5) / 2) and out["chance"] == 0.5
    assert out["gzsl_seen"] == pytest.approx(0.5) and out["gzsl_unseen"] == pytest.approx((0.0 + 0.5) / 2)
    assert out["harmonic_mean"] == pytest.approx(2 * 0.5 * 0.25 / 0.75) == pytest.approx(harmonic_mean(0.5, 0.25))
    assert math.isclose(harmonic_mean(0, 0), 0.0)


def test_zero_shot_accuracies_are_per_class_means_not_sample_means():
    # u0 has 3 samples (all right), u1 one (wrong): per-class mean 0.5, sample mean 0.75
    classes, seen = ["s0", "u0", "u1"], ["s0"]
    y = np.array([0, 0, 0, 1, 1, 1, 2])
    scores = np.array([[9, 0, 0], [9, 0, 0], [0, 9, 0],          # s0: 2 of 3 right under GZSL
                       [0, 9, 1], [0, 9, 1], [0, 9, 1], [0, 9, 1]], dtype=float)
    out = zero_shot_scores(scores, y, classes, seen)
    assert out["unseen"] == pytest.approx(0.5) and out["gzsl_unseen"] == pytest.approx(0.5)
    assert out["gzsl_seen"] == pytest.approx(2 / 3)
