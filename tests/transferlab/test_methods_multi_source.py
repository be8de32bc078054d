"""multi-source: mixture weights from the bound, the weighted losses, and training on several sources."""

import numpy as np
import pytest
import torch
from synthetic_domains import blob_data, blob_test, blobs, mlp

from transferlab.data.adaptation import SourceCandidate
from transferlab.data.types import Domain
from transferlab.errors import DataError, MethodRequirementError
from transferlab.methods import AdaptationData, get_method
from transferlab.methods.deep_coral import coral_loss
from transferlab.methods.multi_source import (kernel_means, mixture_weights, sample_weights,
                                              weighted_coral_loss)
from transferlab.selection import SelectionConfig
from transferlab.selection.candidates import ineligibility
from transferlab.training import TrainSettings, accuracy, train_classifier


def _pairwise_sq(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def test_kernel_means_are_the_mean_gaussian_kernel_at_the_pooled_median_bandwidth():
    rng = np.random.default_rng(0)
    s1, s2, t = rng.normal(size=(5, 2)), rng.normal(1, 1, size=(4, 2)), rng.normal(2, 1, size=(6, 2))
    pooled = np.concatenate([s1, s2, t])
    pairs = np.sort(_pairwise_sq(pooled, pooled)[np.triu_indices(len(pooled), 1)])
    sigma2 = pairs[(len(pairs) - 1) // 2]  # the lower median of the distinct pairs

    def k(a, b):
        return np.exp(-_pairwise_sq(a, b) / (2 * sigma2)).mean()

    gram, cross, tt = kernel_means([s1, s2], t)
    np.testing.assert_allclose(gram, [[k(s1, s1), k(s1, s2)], [k(s2, s1), k(s2, s2)]], rtol=1e-10)
    np.testing.assert_allclose(cross, [k(s1, t), k(s2, t)], rtol=1e-10)
    assert tt == pytest.approx(k(t, t), rel=1e-10)


def test_objective_is_the_weighted_error_plus_half_the_mixture_mmd():
    """J(α*) = α·ε + ½ sqrt(αᵀKα − 2αᵀκ + κ_TT), recomputed here from the kernel means."""
    rng = np.random.default_rng(1)
    s1, s2, t = rng.normal(size=(30, 3)), rng.normal(2, 1, size=(30, 3)), rng.normal(1, 1, size=(30, 3))
    mix = mixture_weights(["a", "b"], [s1, s2], t, [0.1, 0.3])
    gram, cross, tt = kernel_means([s1, s2], t)
    a = mix.alpha
    assert a.sum() == pytest.approx(1.0) and (a >= 0).all()
    mmd = np.sqrt(a @ gram @ a - 2 * a @ cross + tt)
    assert mix.mmd_mixture == pytest.approx(mmd, rel=1e-9)
    assert mix.objective == pytest.approx(a @ np.array([0.1, 0.3]) + 0.5 * mmd, rel=1e-9)
    for i in range(2):  # the optimum is no worse than either source alone
        single = np.eye(2)[i]
        assert mix.objective <= single @ np.array([0.1, 0.3]) + 0.5 * mix.mmd_single[i] + 1e-9


def test_a_source_like_the_target_takes_the_weight_and_a_mislabelled_one_loses_it():
    rng = np.random.default_rng(2)
    target = rng.normal(size=(200, 2))
    like, far = rng.normal(size=(200, 2)), rng.normal(4, 1, size=(200, 2))
    assert mixture_weights(["like", "far"], [like, far], target, [0.05, 0.05]).alpha[0] > 0.95
    # two sources that both look like the target: the one whose labels the model gets wrong loses
    other = rng.normal(size=(200, 2))
    assert mixture_weights(["right", "wrong"], [like, other], target, [0.05, 0.6]).alpha[1] < 0.05


def test_a_target_that_mixes_two_sources_gets_both():
    rng = np.random.default_rng(3)
    a, b = rng.normal(-3, 0.5, size=(300, 2)), rng.normal(3, 0.5, size=(300, 2))
    target = np.concatenate([rng.normal(-3, 0.5, size=(150, 2)), rng.normal(3, 0.5, size=(150, 2))])
    mix = mixture_weights(["a", "b"], [a, b], target, [0.0, 0.0])
    np.testing.assert_allclose(mix.alpha, [0.5, 0.5], atol=0.05)
    assert mix.mmd_mixture < 0.3 * min(mix.mmd_single)


def test_weighted_coral_is_coral_with_equal_weights_and_the_weighted_covariance_otherwise():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(8, 3, generator=g, dtype=torch.float64)
    assert weighted_coral_loss(s, t, torch.ones(6, dtype=torch.float64)).item() == pytest.approx(
        coral_loss(s, t).item(), rel=1e-12)
    w = torch.tensor([1.0, 2.0, 0.5, 0.5, 3.0, 1.0], dtype=torch.float64)
    p = (w / w.sum()).numpy()
    x = s.numpy()
    mu = (p[:, None] * x).sum(0)
    cov_s = sum(p[i] * np.outer(x[i] - mu, x[i] - mu) for i in range(6)) * 6 / 5
    cov_t = np.cov(t.numpy(), rowvar=False)
    expected = ((cov_s - cov_t) ** 2).sum() / (4 * 9)
    assert weighted_coral_loss(s, t, w).item() == pytest.approx(expected, rel=1e-12)


def test_sample_weights_give_each_source_its_share_at_mean_one():
    w = sample_weights([10, 30], np.array([0.75, 0.25]))
    np.testing.assert_allclose(w[:10], 0.75 * 40 / 10)
    np.testing.assert_allclose(w[10:], 0.25 * 40 / 30)
    assert w.mean() == pytest.approx(1.0)
    assert w[:10].sum() / w.sum() == pytest.approx(0.75)


def _shuffled(domain: Domain, seed: int) -> Domain:
    return Domain(domain.name + "-shuffled", domain.x, np.random.default_rng(seed).permutation(domain.y),
                  domain.classes)


@pytest.fixture(scope="module")
def several():
    """The run's source is far from the target; a second candidate sits on it; a third has shuffled labels."""
    base = blob_data(offset=3.0, labels_per_class=0, unlabelled=150)
    near = SourceCandidate.of("near", blobs("near", 240, seed=5, offset=3.0), blobs("near-val", 60, seed=6, offset=3.0))
    noise = SourceCandidate.of("noise", _shuffled(blobs("n", 240, seed=7, offset=3.0), 0),
                            _shuffled(blobs("n-val", 60, seed=8, offset=3.0), 1))
    source = train_classifier(mlp(), base.source_train, base.source_val,
                              TrainSettings(epochs=5, batch_size=32, min_steps_per_epoch=10)).model
    return source, AdaptationData(base.source_train, base.source_val, None, base.target_unlabelled,
                                  other_sources=(near, noise))


def test_trains_on_the_weighted_union_and_beats_the_single_source(several):
    source, data = several
    settings = TrainSettings(epochs=6, batch_size=32, patience=6, min_steps_per_epoch=10)
    result = get_method("multi-source")().fit(source, data, None, settings)
    last = result.history[-1]
    assert last["source_weight_1"] > last["source_weight_0"]  # the near source outweighs the far one
    assert last["source_weight_2"] < 0.1  # shuffled labels: high error, little weight
    assert sum(last[f"source_weight_{i}"] for i in range(3)) == pytest.approx(1.0)
    test = blob_test(offset=3.0)
    single = get_method("deep-coral")().fit(source, data, None, settings)
    assert accuracy(result.model, test) > max(accuracy(source, test), accuracy(single.model, test)) + 0.05


def test_refuses_a_single_source_and_selection_names_why(several):
    source, data = several
    one = AdaptationData(data.source_train, data.source_val, None, data.target_unlabelled)
    with pytest.raises(MethodRequirementError, match="several candidate sources"):
        get_method("multi-source")().fit(source, one, None, TrainSettings(epochs=1))
    assert "several candidate sources" in ineligibility("multi-source", "domain-adaptation", 0, True, sources=1)
    assert ineligibility("multi-source", "domain-adaptation", 0, True, sources=3) is None


def test_other_sources_must_share_the_source_classes(several):
    _, data = several
    odd = Domain("odd", data.source_train.x, data.source_train.y, ("x", "y", "z"))
    with pytest.raises(DataError, match="candidate source 'odd' has other classes"):
        AdaptationData(data.source_train, data.source_val, None, data.target_unlabelled,
                       other_sources=(SourceCandidate.of("odd", odd, odd),))


def test_trial_mode_tries_multi_source_only_with_several_sources(several):
    from transferlab.selection.trials import default_candidates

    config = SelectionConfig(mode="trial")
    report = {"mmd": {"p_value": 0.001, "normalised": 0.5}, "a_distance": 1.5}
    assert "multi-source" in default_candidates(report, 0, 3, config, True, sources=3)[0]
    assert "multi-source" not in default_candidates(report, 0, 3, config, True, sources=1)[0]


def test_other_sources_are_read_only_by_a_method_that_uses_them(several):
    """A stage builds each candidate's dataset from its recipe: only multi-source may pay for it."""
    source, data = several
    reads = []

    def read():
        reads.append(1)
        return data.other_sources[0].splits

    lazy = SourceCandidate("near", data.other_sources[0].classes, read)
    built = AdaptationData(data.source_train, data.source_val, None, data.target_unlabelled, other_sources=(lazy,))
    short = TrainSettings(epochs=1, batch_size=32, max_steps_per_epoch=2)
    get_method("deep-coral")().fit(source, built, None, short)
    assert reads == []
    get_method("multi-source")().fit(source, built, None, short)
    assert reads == [1]  # read once, however often the method reads train and val
