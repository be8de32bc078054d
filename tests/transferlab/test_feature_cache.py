"""Frozen-prefix features computed once per content (transferlab/models/features.py) and trained on by
linear-probe and layer-transfer."""

import numpy as np
import pytest
import torch
from synthetic_domains import images, lenet

from transferlab.data import Domain
from transferlab.methods import AdaptationData, get_method
from transferlab.methods import target_training
from transferlab.models.features import CACHE
from transferlab.training import TrainSettings, train_classifier

SETTINGS = TrainSettings(epochs=3, batch_size=16, lr=3e-3, patience=3, min_steps_per_epoch=6)


@pytest.fixture(scope="module")
def pair():
    source = images("src", 200, seed=0)
    target = images("tgt", 120, seed=1, invert=True)
    model = train_classifier(lenet(), source.subset(np.arange(160)), source.subset(np.arange(160, 200)),
                             SETTINGS).model
    return model, AdaptationData(source.subset(np.arange(160)), source.subset(np.arange(160, 200)),
                                 target.subset(np.arange(60)), target.subset(np.arange(60, 120)))


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_the_rest_of_the_network_from_the_prefix_is_the_network(pair, k):
    model, data = pair
    model.eval()
    x = torch.from_numpy(data.target_labelled.x[:8])
    torch.testing.assert_close(model.forward_from(k, model.prefix(k, x)), model(x))


@pytest.mark.parametrize("name, config, k", [("linear-probe", None, 3), ("layer-transfer", {"k": 2}, 2)])
def test_frozen_features_are_computed_once_and_train_as_recomputing_them_would(pair, monkeypatch, name, config, k):
    model, data = pair
    CACHE.clear()
    first = get_method(name)().fit(model, data, config, SETTINGS)
    assert CACHE.misses == 2  # computed once each: the training part and the held-out part of the labels
    assert not hasattr(first.model, "_transferlab_cached_prefix")
    again = get_method(name)().fit(model, data, config, SETTINGS.model_copy(update={"lr": 1e-3}))
    assert CACHE.misses == 2  # a second run on the same samples (a trial) computes nothing again
    monkeypatch.setattr(target_training, "_cacheable_prefix", lambda model, settings: 0)
    recomputed = get_method(name)().fit(model, data, config, SETTINGS)
    x = torch.from_numpy(data.target_labelled.x)
    with torch.no_grad():
        torch.testing.assert_close(first.model.eval()(x), recomputed.model.eval()(x), atol=1e-4, rtol=1e-4)
    assert again.model is not first.model


def test_a_changed_weight_or_other_data_is_never_served_stale_features(pair):
    model, data = pair
    CACHE.clear()
    a = CACHE.prefix(model, 2, data.target_labelled.x)
    other = Domain("t", data.target_labelled.x[::-1].copy(), data.target_labelled.y, data.target_labelled.classes)
    CACHE.prefix(model, 2, other.x)
    changed = lenet()
    changed.load_state_dict(model.state_dict())
    with torch.no_grad():
        changed.blocks[1][0].weight[0, 0, 0, 0] += 1e-3
    b = CACHE.prefix(changed, 2, data.target_labelled.x)
    assert CACHE.misses == 3 and CACHE.hits == 0 and not torch.equal(a, b)
    CACHE.prefix(model, 2, data.target_labelled.x.copy())  # same content, another array: served
    assert CACHE.hits == 1
