"""Attribute-supervised source training (the pretrain stage given a class–attribute table): the
attribute loss is the multi-label BCE of the seen classes' signatures, and nothing about an unseen
class (its row, its label) reaches the source model."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from transferlab.data.attributes import parse_attribute_table, seen_attribute_targets
from transferlab.errors import DataError
from transferlab.models import ModelSpec, build_model, load_model, save_model
from transferlab.training import TrainSettings, train_classifier
from transferlab.training.supervised import attribute_bce

sys.path.insert(0, str(Path(__file__).resolve().parent))
from zero_shot_domains import SEEN, attribute_domain


def test_attribute_bce_matches_numpy_on_a_tiny_batch():
    logits = torch.tensor([[2.0, -1.0, 0.5], [-0.3, 0.0, 1.5], [1.0, 3.0, -2.0]])
    rows = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])  # two classes' signatures
    y = torch.tensor([0, 1, 1])
    z, a = logits.numpy().astype(np.float64), rows.numpy()[y.numpy()].astype(np.float64)
    sig = 1 / (1 + np.exp(-z))
    expected = -np.mean(a * np.log(sig) + (1 - a) * np.log(1 - sig))
    # by hand, first sample: −[log σ(2) + log σ(1) + log σ(0.5)] = 0.126928 + 0.313262 + 0.474077
    assert -np.sum(a[0] * np.log(sig[0]) + (1 - a[0]) * np.log(1 - sig[0])) == pytest.approx(0.914267, abs=1e-6)
    # the other two: 0.554355 + 0.693147 + 0.201413 and 1.313262 + 0.048587 + 2.126928; mean over 9 terms
    assert expected == pytest.approx((0.914267 + 1.448915 + 3.488777) / 9, abs=1e-6)
    assert attribute_bce(logits, rows, y).item() == pytest.approx(expected, rel=1e-6)


CONTINUOUS = "class,a,b,c,d\nc0,0.1,0.9,0.2,0.7\nc1,0.8,0.3,0.6,0.1\nc2,0.4,0.5,0.9,0.3\nc3,0.7,0.2,0.1,0.8\n"


def test_seen_targets_are_the_seen_rows_binarised_over_the_seen_rows_only():
    table = parse_attribute_table(CONTINUOUS, "t")
    # thresholds are the means over c0, c1 alone (a: 0.45, b: 0.6, c: 0.4, d: 0.4)
    np.testing.assert_array_equal(seen_attribute_targets(table, ["c0", "c1"]), [[0, 1, 0, 1], [1, 0, 1, 0]])
    # Unseen rows that would move every threshold over all rows (to ≥ 1.2) change nothing.
    other = parse_attribute_table(CONTINUOUS.replace("c2,0.4,0.5,0.9,0.3", "c2,9,9,9,9")
                                  .replace("c3,0.7,0.2,0.1,0.8", "c3,-5,-5,-5,-5"), "t")
    np.testing.assert_array_equal(seen_attribute_targets(other, ["c0", "c1"]),
                                  seen_attribute_targets(table, ["c0", "c1"]))


def _train(rows, seed=0):
    domain = attribute_domain("w", 120, seed, classes=SEEN)
    spec = ModelSpec(arch="mlp", input_dim=6, hidden=16, num_classes=len(SEEN), classes=list(SEEN),
                     attribute_head=rows.shape[1])
    settings = TrainSettings(epochs=2, batch_size=32, min_steps_per_epoch=3, attribute_weight=1.0, seed=seed)
    return train_classifier(build_model(spec, seed=seed), domain, domain, settings, class_attributes=rows)


def test_the_unseen_rows_change_nothing_in_the_source_model():
    from zero_shot_domains import TABLE_CSV

    table = parse_attribute_table(TABLE_CSV, "t")
    changed = parse_attribute_table(TABLE_CSV.replace("c6,0,1,1,0", "c6,1,1,1,1").replace("c7,1,0,0,1", "c7,0,0,0,0"),
                                    "t")
    a, b = (_train(seen_attribute_targets(t, SEEN)).model.state_dict() for t in (table, changed))
    assert "attribute_head.weight" in a
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_the_attribute_loss_trains_the_attribute_head_and_the_model_round_trips(tmp_path):
    table = parse_attribute_table(__import__("zero_shot_domains").TABLE_CSV, "t")
    rows = seen_attribute_targets(table, SEEN)
    result = _train(rows)
    assert all("attribute_bce" in h for h in result.history)
    assert result.history[-1]["attribute_bce"] < result.history[0]["attribute_bce"]
    save_model(result.model, tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.spec.attribute_head == 4
    torch.testing.assert_close(loaded.attribute_head.weight, result.model.attribute_head.weight)


def test_attribute_weight_zero_leaves_the_attribute_head_untrained():
    # β scales the attribute loss: at 0 (and no weight decay) nothing moves the attribute head
    rows = seen_attribute_targets(parse_attribute_table(__import__("zero_shot_domains").TABLE_CSV, "t"), SEEN)
    domain = attribute_domain("w", 120, 0, classes=SEEN)
    spec = ModelSpec(arch="mlp", input_dim=6, hidden=16, num_classes=len(SEEN), classes=list(SEEN), attribute_head=4)
    initial = build_model(spec, seed=0).attribute_head.weight.detach().clone()
    settings = TrainSettings(epochs=1, batch_size=32, min_steps_per_epoch=3, attribute_weight=0.0, weight_decay=0.0,
                             seed=0)
    trained = train_classifier(build_model(spec, seed=0), domain, domain, settings, class_attributes=rows).model
    torch.testing.assert_close(trained.attribute_head.weight, initial, rtol=0, atol=0)


def test_attribute_rows_must_match_the_training_classes():
    with pytest.raises(DataError, match="one row per class"):
        _train(np.zeros((len(SEEN) + 2, 4)))


@pytest.mark.parametrize("update", [{}, {"progressive": True}, {"attribute_block": 4}, {"num_classes": 3, "classes": None}])
def test_a_spec_with_an_attribute_head_round_trips_through_every_method_shape(tmp_path, update):
    # adapted models keep the source spec's attribute_head (target_spec, progressive columns, DAP's block)
    spec = ModelSpec(arch="mlp", input_dim=6, hidden=16, num_classes=2, attribute_head=4).model_copy(update=update)
    model = build_model(spec, seed=0)
    save_model(model, tmp_path)
    x = torch.randn(5, 6)
    torch.testing.assert_close(load_model(tmp_path)(x), model.eval()(x))
