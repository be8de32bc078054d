"""Which layers to transfer: per-block transferability and the depth it suggests; what a model
carries when there is no source data."""

import numpy as np
import pytest
import torch
from torch import nn

from transferlab.data import Domain
from transferlab.models import ModelSpec, build_model
from transferlab.similarity import SimilarityConfig, similarity_report
from transferlab.similarity.block_scores import block_transferability, pca_h_score, pooled, suggested_depth
from transferlab.similarity.source_free import normalisation_shift, prediction_profile


def _labels(n=120, c=4):
    return np.arange(n) % c


def test_a_block_that_carries_the_targets_signal_ranks_above_a_random_one():
    rng = np.random.default_rng(0)
    y = _labels()
    means = rng.normal(0, 3, size=(4, 32))
    signal = means[y] + rng.normal(0, 1, size=(len(y), 32))
    profile = block_transferability({"input": rng.normal(size=(len(y), 32)), "random": rng.normal(size=(len(y), 32)),
                                     "signal": signal, "logits": rng.normal(size=(len(y), 4))}, y)
    scores = {p["layer"]: p for p in profile}
    assert "logits" not in scores
    assert scores["signal"]["logme"] > scores["random"]["logme"] + 0.5
    assert scores["signal"]["hscore"] > scores["random"]["hscore"]
    depth = suggested_depth(profile)
    assert depth["block"] == "signal" and depth["k"] == 2 and depth["n_blocks"] == 2 and not depth["hurt"]
    assert "linear probe" in depth["reason"]


def test_a_profile_peaking_early_suggests_layer_transfer_and_one_below_the_pixels_predicts_hurt():
    profile = [{"layer": "input", "logme": 0.1}, {"layer": "a", "logme": 0.5}, {"layer": "b", "logme": 0.2},
               {"layer": "c", "logme": 0.0}]
    depth = suggested_depth(profile)
    assert (depth["k"], depth["block"], depth["hurt"]) == (1, "a", False) and "layer transfer k = 1" in depth["reason"]
    profile[0]["logme"] = 0.6
    hurt = suggested_depth(profile)
    assert hurt["hurt"] and "no block carries more" in hurt["reason"]
    assert suggested_depth([{"layer": "input", "logme": 0.0}]) is None


def test_feature_maps_are_pooled_to_the_largest_grid_within_the_width():
    maps = np.random.default_rng(0).normal(size=(3, 20, 12, 12)).astype(np.float32)
    assert pooled(maps, 1024).shape == (3, 20 * 7 * 7)
    assert pooled(maps, 20 * 144).shape == (3, 20 * 144)  # already small enough: untouched
    assert np.allclose(pooled(maps, 20)[:, :20], maps.mean(axis=(2, 3)), atol=1e-6)
    assert pooled(maps[:, :, 0, 0], 4).shape == (3, 20)


def test_pca_h_score_does_not_reward_width_on_few_samples():
    rng = np.random.default_rng(1)
    y = _labels(40)
    narrow = np.eye(4)[y] * 3 + rng.normal(0, 0.5, size=(40, 4))
    wide = rng.normal(size=(40, 400))  # pure noise: a plain pseudo-inverse would fit it perfectly
    assert pca_h_score(narrow, y) > pca_h_score(wide, y)


class _BN(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x):
        return self.bn(x)


def test_normalisation_shift_is_zero_for_the_source_statistics_and_grows_with_the_shift():
    model = _BN()
    x = np.random.default_rng(0).normal(0, 1, size=(4000, 3)).astype(np.float32)
    model.train()
    model.bn.momentum = None  # cumulative average: running stats become the data's statistics
    for start in range(0, 4000, 500):
        model(torch.from_numpy(x[start:start + 500]))
    same = normalisation_shift(model, x)[0]["symmetric_kl"]
    shifted = normalisation_shift(model, x + 2.0)[0]["symmetric_kl"]
    assert same < 1e-3
    # Δ = 2, σ = 1 on both sides: (1 + 4) / 2 + (1 + 4) / 2 − 1 = 4 per channel.
    assert shifted == pytest.approx(4.0, rel=0.05)
    assert normalisation_shift(nn.Linear(3, 3), x) == []


def test_prediction_profile():
    confident = np.log(np.eye(4)[np.arange(40) % 4] * 0.96 + 0.01)  # rows: 0.97 and three 0.01
    p = prediction_profile(confident)
    assert p["confidence"] == pytest.approx(0.97, abs=1e-6)
    assert p["class_spread"] == pytest.approx(1.0) and p["predicted_shares"] == [0.25] * 4
    collapsed = prediction_profile(np.tile([5.0, 0, 0, 0], (40, 1)))
    assert collapsed["class_spread"] < 0.5 and collapsed["predicted_shares"][0] == 1.0


def _images(n, classes, seed):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(classes)
    x = rng.uniform(0, 0.2, size=(n, 1, 16, 16)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, 0, 2 + 3 * c: 4 + 3 * c, 2:14] = 0.9
    return Domain("d", x, y, tuple(classes))


def test_the_report_follows_the_road():
    model = build_model(ModelSpec(arch="lenet", image_size=16, hidden=32, num_classes=3, classes=["a", "b", "c"]), seed=0)
    cfg = SimilarityConfig(permutations=20, layer_permutations=20, max_samples=60, layer_max_samples=60)
    source, target = _images(60, "abc", 0), _images(60, "cde", 1)
    new_task = similarity_report(model, source, target, target, config=cfg)
    assert new_task["road"] == "task-transfer" and new_task["source_data"]
    assert "logits" not in [l["layer"] for l in new_task["layers"]]
    assert list(new_task["class_conditional"]["per_class"]) == ["c"]  # the one class both have
    assert "only the 1 classes" in new_task["class_conditional"]["skipped"]
    assert [b["layer"] for b in new_task["block_transferability"]] == ["input", "conv1", "conv2", "fc"]
    assert new_task["depth"]["n_blocks"] == 3
    free = similarity_report(model, None, _images(60, "abc", 2), None, config=cfg)
    assert free["road"] == "domain-adaptation" and not free["source_data"]
    assert "mmd" not in free and "mmd" in free["not_measured"] and "no source data" in free["why"]
    assert free["normalisation"]["layers"] == [] and free["affine_norm_layers"] == 0
    assert free["transferability"] is None and free["depth"] is None
