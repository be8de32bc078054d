"""Transitive transfer's core: a self-training hop's pseudo-labels and loss pinned by hand, the chain
hands each model on, the intermediate pools' labels are never read, the one-kernel chain distances
against a direct numpy computation, and the decision rule on hand-made distances."""

import math

import numpy as np
import pytest
import torch
from synthetic_domains import blob_data, blobs, mlp

from transferlab.data import Domain
from transferlab.data.adaptation import AdaptationData
from transferlab.errors import DataError
from transferlab.methods import get_method
from transferlab.selection.transitive import TransitiveConfig, best_chain, choose_chain
from transferlab.similarity.chain import chain_distances
from transferlab.similarity.mmd import mmd2_statistic
from transferlab.training import AdaptResult, TrainSettings
from transferlab.transitive import (
    SelfTrainingConfig,
    adapt_in_hops,
    confident_pseudo_labels,
    self_train,
    self_training_loss,
)

# Five samples, three classes. Top probabilities (softmax by hand):
#   0: [4, 0, 0] -> e^4 / (e^4 + 2)      = 0.9647   class 0
#   1: [0, 1, 0] -> e / (e + 2)          = 0.5761   class 1
#   2: [0, 0, 2] -> e^2 / (e^2 + 2)      = 0.7870   class 2
#   3: [1, 1, 1] -> 1/3                  = 0.3333   class 0 (first of the tie)
#   4: [0, 3, 0] -> e^3 / (e^3 + 2)      = 0.9094   class 1
LOGITS = np.array([[4, 0, 0], [0, 1, 0], [0, 0, 2], [1, 1, 1], [0, 3, 0]], dtype=np.float64)


def test_pseudo_labels_are_the_argmax_and_the_least_confident_fraction_is_dropped():
    labels, kept = confident_pseudo_labels(LOGITS, drop_fraction=0.4, min_confidence=0.0)
    assert labels.tolist() == [0, 1, 2, 0, 1]
    # ceil(0.6 * 5) = 3 most confident: samples 0 (0.965), 4 (0.909), 2 (0.787).
    assert kept.tolist() == [True, False, True, False, True]


def test_the_confidence_floor_drops_what_the_fraction_keeps():
    _, kept = confident_pseudo_labels(LOGITS, drop_fraction=0.0, min_confidence=0.8)
    assert kept.tolist() == [True, False, False, False, True]  # 0.787 < 0.8 <= 0.909
    _, kept = confident_pseudo_labels(LOGITS, drop_fraction=0.3, min_confidence=0.0)
    assert kept.tolist() == [True, True, True, False, True]  # ceil(0.7 * 5) = 4: the 1/3 tie goes
    _, kept = confident_pseudo_labels(LOGITS, drop_fraction=0.1, min_confidence=0.0)
    assert kept.all()  # Kumar et al.'s default on 5 samples: ceil(4.5) = 5 kept


def test_a_sample_exactly_at_the_confidence_floor_is_kept():
    # softmax([1, 1]) = [0.5, 0.5] exactly; softmax([3, 0]) top = e^3 / (e^3 + 1) = 0.9526. K keeps c >= tau.
    logits = np.array([[1.0, 1.0], [3.0, 0.0]])
    _, kept = confident_pseudo_labels(logits, drop_fraction=0.0, min_confidence=0.5)
    assert kept.tolist() == [True, True]
    _, kept = confident_pseudo_labels(logits, drop_fraction=0.0, min_confidence=np.nextafter(0.5, 1.0))
    assert kept.tolist() == [False, True]


def test_self_training_loss_is_the_mean_cross_entropy_to_the_pseudo_labels():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    # -log(e^2 / (e^2 + 1)) = log(1 + e^-2); -log(e / (e + 1)) = log(1 + e^-1)
    expected = (math.log1p(math.exp(-2)) + math.log1p(math.exp(-1))) / 2
    assert float(self_training_loss(logits, torch.tensor([0, 1]))) == pytest.approx(expected, rel=1e-6)
    assert float(self_training_loss(logits, torch.tensor([1, 0]))) == pytest.approx(
        (math.log1p(math.exp(2)) + math.log1p(math.exp(1))) / 2, rel=1e-6)


def _settings():
    return TrainSettings(epochs=2, batch_size=16, seed=0, min_steps_per_epoch=4)


def _garbage(domain: Domain, seed: int) -> Domain:
    return Domain(domain.name, domain.x, np.random.default_rng(seed).integers(0, 3, len(domain)), domain.classes)


def _same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_hop_never_reads_the_pools_labels_and_leaves_its_start_model_alone():
    source = mlp(seed=0)
    before = {k: v.clone() for k, v in source.state_dict().items()}
    pool = blobs("pool", 60, seed=3, offset=1.5)
    one = self_train(source, pool, SelfTrainingConfig(), _settings()).model
    two = self_train(source, _garbage(pool, 1), SelfTrainingConfig(), _settings()).model
    assert _same_weights(one, two)
    assert not _same_weights(one, source)
    assert all(torch.equal(before[k], v) for k, v in source.state_dict().items())


def test_a_hop_with_nothing_confident_enough_says_so():
    with pytest.raises(DataError, match="min_confidence"):
        self_train(mlp(seed=0), blobs("pool", 30, seed=3), SelfTrainingConfig(min_confidence=1.0), _settings())


def test_hops_start_from_the_previous_hops_model_and_dann_hops_ignore_pool_labels():
    data = blob_data(offset=3.0, labels_per_class=0, unlabelled=60)
    middle = blobs("middle", 60, seed=5, offset=1.5)
    started_from = []

    def hop(model, index, name, pool_labels=None):
        started_from.append(model)
        pool = {"middle": middle if pool_labels is None else pool_labels, "target": data.target_unlabelled}[name]
        step = AdaptationData(source_train=data.source_train, source_val=data.source_val, target_unlabelled=pool)
        return get_method("dann")().fit(model, step, None, _settings())

    source = mlp(seed=0)
    hops = adapt_in_hops(source, ["middle", "target"], hop)
    assert [h.domain for h in hops] == ["middle", "target"]
    assert started_from[0] is source and started_from[1] is hops[0].result.model
    garbage = adapt_in_hops(source, ["middle", "target"],
                            lambda m, i, n: hop(m, i, n, pool_labels=_garbage(middle, 2)))
    assert _same_weights(hops[-1].result.model, garbage[-1].result.model)


def test_a_chain_hands_on_models_it_did_not_make_too():
    seen = []

    def hop(model, index, name):
        seen.append((model, index, name))
        return AdaptResult(model=f"model after {name}")

    out = adapt_in_hops("source model", ["a", "b", "target"], hop, on_hop=lambda h: seen.append(h.domain))
    assert [s for s in seen] == [("source model", 0, "a"), "a", ("model after a", 1, "b"), "b",
                                 ("model after b", 2, "target"), "target"]
    assert out[-1].result.model == "model after target"


def _direct_mmd2(x, y, sigmas2):
    def k(a, b):
        d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return sum(np.exp(-d / (2 * s)) for s in sigmas2) / len(sigmas2)
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean())


def test_chain_distances_use_one_kernel_and_match_a_direct_computation():
    rng = np.random.default_rng(0)
    feats = {"source": rng.normal(0, 1, (30, 4)), "mid": rng.normal(1, 1, (25, 4)), "target": rng.normal(2, 1, (20, 4))}
    out = chain_distances(feats, seed=0, a_distance=False)
    sigmas2 = [b ** 2 for b in out["bandwidths"]]
    for a, b in (("source", "mid"), ("mid", "target"), ("source", "target")):
        assert mmd2_statistic(feats[a], feats[b], sigmas2=sigmas2) == pytest.approx(
            _direct_mmd2(feats[a], feats[b], sigmas2), rel=1e-9)
        assert out["mmd2"][a][b] == out["mmd2"][b][a] == pytest.approx(_direct_mmd2(feats[a], feats[b], sigmas2))
        assert out["mmd"][a][b] == pytest.approx(math.sqrt(max(out["mmd2"][a][b], 0)))
    # The median heuristic of the pooled source + target sample fixes σ₀² for every pair.
    pooled = np.concatenate([feats["source"], feats["target"]])
    pooled = pooled - pooled.mean(0)
    d = ((pooled[:, None] - pooled[None]) ** 2).sum(-1)[~np.eye(len(pooled), dtype=bool)]
    assert sigmas2[2] == pytest.approx(np.median(d))
    assert out["mmd"]["source"]["target"] > max(out["mmd"]["source"]["mid"], out["mmd"]["mid"]["target"])


def _dist(pairs: dict[tuple[str, str], float]) -> dict:
    names = sorted({n for p in pairs for n in p})
    d = {a: {b: 0.0 for b in names} for a in names}
    for (a, b), v in pairs.items():
        d[a][b] = d[b][a] = v
    return d


def _decide(pairs, candidates, p_value=0.001, **config):
    return choose_chain(_dist(pairs), candidates, p_value=p_value, alpha=0.05, config=TransitiveConfig(**config))


BETWEEN = {("source", "target"): 1.0, ("source", "I"): 0.4, ("I", "target"): 0.5}


def test_a_stone_between_the_ends_that_halves_the_largest_step_is_taken():
    decision = _decide(BETWEEN, ["I"])
    assert decision.use and decision.chain == ["I"]
    assert decision.hops == [0.4, 0.5] and decision.bottleneck == 0.5 and decision.direct == 1.0
    assert "0.50 of the direct distance" in decision.reason


def test_the_rule_adapts_directly_when_the_chain_does_not_cut_the_largest_step_enough():
    decision = _decide({("source", "target"): 1.0, ("source", "I"): 0.8, ("I", "target"): 0.3}, ["I"])
    assert not decision.use and "0.80 of the direct distance" in decision.reason and "max_hop_ratio 0.75" in decision.reason
    assert _decide({("source", "target"): 1.0, ("source", "I"): 0.8, ("I", "target"): 0.3}, ["I"],
                   max_hop_ratio=0.8).use  # exactly at the ratio: taken


def test_a_stone_beyond_either_end_is_dropped_and_an_insignificant_shift_needs_no_bridge():
    decision = _decide({("source", "target"): 1.0, ("source", "I"): 1.2, ("I", "target"): 0.2}, ["I"])
    assert not decision.use and "not between" in decision.dropped["I"]
    # exactly as far from the source as the target is: not strictly between, dropped too
    at_edge = _decide({("source", "target"): 1.0, ("source", "I"): 1.0, ("I", "target"): 0.2}, ["I"])
    assert not at_edge.use and "not between" in at_edge.dropped["I"]
    assert not _decide(BETWEEN, ["I"], p_value=0.3).use
    assert "not significant" in _decide(BETWEEN, ["I"], p_value=0.3).reason
    assert not _decide(BETWEEN, []).use
    forced = _decide(BETWEEN, ["I"], p_value=0.3, force=True)
    assert forced.use and forced.chain == ["I"] and "force" in forced.reason


def test_several_stones_are_ordered_from_the_source_and_the_lowest_bottleneck_wins():
    pairs = {("source", "target"): 0.9, ("source", "A"): 0.3, ("A", "B"): 0.3, ("B", "target"): 0.3,
             ("source", "B"): 0.6, ("A", "target"): 0.6}
    decision = _decide(pairs, ["B", "A"])
    assert decision.chain == ["A", "B"] and decision.hops == [0.3, 0.3, 0.3]


def test_a_tie_in_the_bottleneck_goes_to_fewer_hops():
    pairs = {("source", "target"): 1.0, ("source", "A"): 0.5, ("A", "target"): 0.5, ("A", "B"): 0.5,
             ("B", "target"): 0.2, ("source", "B"): 0.7}
    chain, hops = best_chain(_dist(pairs), ["A", "B"], "source", "target")
    assert chain == ("A",) and hops == [0.5, 0.5]
