"""BNM and BSP (options of dann and cdan) against their papers' formulas, in numpy, on a fixed batch."""

import numpy as np
import pytest
import torch
from synthetic_domains import blob_data, blob_test, mlp

from transferlab.methods import AdaptationData, get_method
from transferlab.methods.spectral import AdversarialConfig, bnm_loss, bsp_loss, spectral_terms
from transferlab.training import TrainSettings, train_classifier

LOGITS = np.array([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [3.0, 0.0, 0.0], [0.0, 0.2, 2.5]])
FS = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0], [2.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
FT = np.array([[0.5, 2.0, 0.0], [1.0, 0.0, 1.0], [0.0, 0.0, 3.0]])


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_bnm_is_minus_the_nuclear_norm_of_the_predictions_over_the_batch():
    expected = -np.linalg.svd(_softmax(LOGITS), compute_uv=False).sum() / len(LOGITS)
    assert bnm_loss(torch.tensor(LOGITS)).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(-0.6805132, abs=1e-6)


def test_bsp_sums_the_largest_squared_singular_values_of_each_domain():
    sv = [np.linalg.svd(f, compute_uv=False) for f in (FS, FT)]
    for k in (1, 2):
        expected = sum((s[:k] ** 2).sum() for s in sv)
        assert bsp_loss(torch.tensor(FS), torch.tensor(FT), k).item() == pytest.approx(expected, rel=1e-6)
    assert bsp_loss(torch.tensor(FS), torch.tensor(FT), 1).item() == pytest.approx(20.7633392, rel=1e-6)


def test_regulariser_weighs_each_term_by_its_own_coefficient():
    fs, ft, zt = torch.tensor(FS), torch.tensor(FT), torch.tensor(LOGITS)
    assert spectral_terms(AdversarialConfig(), fs, ft, zt) == {}
    terms = spectral_terms(AdversarialConfig(bnm=0.5, bsp=1e-2), fs, ft, zt)
    assert terms["regulariser"].item() == pytest.approx(0.5 * terms["bnm"].item() + 1e-2 * terms["bsp"].item())


def test_bnm_makes_dann_predictions_on_the_target_more_diverse_and_confident():
    full = blob_data(offset=3.0, labels_per_class=0)
    data = AdaptationData(full.source_train, full.source_val, None, full.target_unlabelled)
    target = blob_test(offset=3.0)
    settings = TrainSettings(epochs=4, batch_size=32, min_steps_per_epoch=10, patience=4)
    source = train_classifier(mlp(), data.source_train, data.source_val, settings).model

    def nuclear(model):
        model.eval()
        with torch.no_grad():
            return -bnm_loss(model(torch.as_tensor(target.x))).item()  # at most sqrt(K / N)

    plain = get_method("dann")().fit(source, data, None, settings)
    with_bnm = get_method("dann")().fit(source, data, {"bnm": 1.0}, settings)
    assert "bnm" in with_bnm.history[-1] and "bnm" not in plain.history[-1]
    assert nuclear(with_bnm.model) > 1.03 * nuclear(plain.model)
