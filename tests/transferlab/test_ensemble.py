import numpy as np
import pytest
import torch

from transferlab.ensemble import (
    EnsembleClassifier,
    committee_choice,
    committee_top_picks,
)
from transferlab.errors import ConfigError
from transferlab.models import ModelSpec, build_model


def _np_softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_ensemble_predictions_are_the_mean_of_its_members():
    torch.manual_seed(0)
    spec = ModelSpec(arch="mlp", input_dim=5, num_classes=3, hidden=8)
    members = [build_model(spec, seed=s).eval() for s in range(3)]
    x = torch.randn(7, 5)
    ens = EnsembleClassifier(members).eval()
    with torch.no_grad():
        mean = np.mean([_np_softmax(m(x).double().numpy()) for m in members], axis=0)
        got = torch.softmax(ens(x).double(), 1).numpy()
        feats = ens.features(x).numpy()
        second = _np_softmax(members[1](x).double().numpy())
    np.testing.assert_allclose(got, mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(got.argmax(1), mean.argmax(1))
    np.testing.assert_allclose(feats[:, 3:6], second, rtol=1e-5, atol=1e-7)
    assert feats.shape == (7, 3 * 3)
    with pytest.raises(ConfigError):
        EnsembleClassifier([])


def test_committee_choice_ensembles_only_when_the_validators_disagree():
    agree = committee_choice({"dev": "dann", "im": "dann"})
    assert not agree.ensemble and agree.finalists == ("dann",) and "agree" in agree.reason
    split = committee_choice({"dev": "dann", "im": "cdan", "entropy": "dann"})
    assert split.ensemble and split.finalists == ("dann", "cdan")
    assert "disagree" in split.reason and "DEV → dann" in split.reason


def test_committee_top_picks_take_each_validators_best_candidate_first_on_ties():
    scores = {"dann": {"dev": -1.0, "im": 0.5, "entropy": -0.2},
              "cdan": {"dev": -0.5, "im": 0.5, "entropy": -0.3},
              "shot": {"dev": -2.0, "im": 0.1}}
    assert committee_top_picks(scores) == {"dev": "cdan", "im": "dann"}  # entropy: not every candidate has it
