import numpy as np
import pytest
import torch
from synthetic_domains import blobs, images, lenet, mlp

from transferlab.errors import ConfigError, DataError
from transferlab.training import (
    BatchStream,
    TrainSettings,
    accuracy,
    freeze,
    holdout_split,
    resolve_device,
    steps_per_epoch,
    train_classifier,
    train_mode,
)


def settings(**kw):
    base = dict(epochs=4, batch_size=32, lr=3e-3, patience=2, min_steps_per_epoch=5, seed=0)
    return TrainSettings(**{**base, **kw})


def test_train_classifier_learns_and_reports_its_criterion():
    train, val = blobs("s", 240, 1), blobs("v", 60, 2)
    logged = []
    result = train_classifier(mlp(), train, val, settings(epochs=8, patience=8), log=lambda step, m: logged.append((step, m)))
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert accuracy(result.model, val) > 0.9
    assert result.best_score == pytest.approx(accuracy(result.model, val))
    assert "validation" in result.checkpoint_criterion
    assert [s for s, _ in logged] == list(range(1, len(result.history) + 1))
    assert {"loss", "checkpoint_score"} <= set(logged[0][1])
    assert not result.model.training


def test_train_classifier_on_images_with_lenet():
    train, val = images("s", 96, 1), images("v", 30, 2)
    result = train_classifier(lenet(), train, val, settings(epochs=3))
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.best_score > 0.6


def test_same_seed_same_numbers_and_different_seed_differs():
    train, val = blobs("s", 120, 1), blobs("v", 30, 2)
    a = train_classifier(mlp(seed=3), train, val, settings(epochs=2))
    b = train_classifier(mlp(seed=3), train, val, settings(epochs=2))
    c = train_classifier(mlp(seed=3), train, val, settings(epochs=2, seed=5))
    for (ka, va), (_, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(va, vb), ka
    assert a.history[-1]["loss"] == b.history[-1]["loss"]
    assert a.history[-1]["loss"] != c.history[-1]["loss"]


def test_epoch_limit_trains_a_fraction_of_an_epoch_and_says_so():
    train, val = blobs("s", 240, 1), blobs("v", 60, 2)  # 240 / 32 -> 8 steps per epoch
    steps = []
    model = mlp()
    model.register_forward_pre_hook(lambda m, args: steps.append(1) if m.training else None)
    result = train_classifier(model, train, val, settings(epochs=4, patience=4, epoch_limit=1.5))
    assert [h["epoch_fraction"] for h in result.history] == [1.0, 0.5]
    assert len(steps) == 12
    tiny = train_classifier(mlp(), train, val, settings(epochs=4, epoch_limit=0.01))
    assert [h["epoch_fraction"] for h in tiny.history] == [0.125]  # never less than one step
    capped = train_classifier(mlp(), train, val, settings(epochs=2, patience=4, epoch_limit=9.0))
    assert len(capped.history) == 2  # the limit never extends a run past ``epochs``


def test_early_stopping_keeps_the_best_epoch_and_stops_after_patience():
    train, val = blobs("s", 120, 1), blobs("v", 30, 2)
    # A validation set with the labels scrambled stops improving almost at once.
    bad_val = val.subset(np.arange(len(val)))
    bad_val = type(val)("scrambled", bad_val.x, np.roll(bad_val.y, 1), val.classes)
    result = train_classifier(mlp(), train, bad_val, settings(epochs=20, patience=2))
    scores = [h["checkpoint_score"] for h in result.history]
    assert len(result.history) < 20
    assert result.best_score == max(scores)
    assert result.best_epoch == scores.index(max(scores)) + 1
    assert len(scores) - result.best_epoch == 2


def test_max_steps_per_epoch_caps_an_epoch():
    assert steps_per_epoch([1000], 10, 1, 7) == 7
    assert steps_per_epoch([40, 90], 32, 1, None) == 3
    assert steps_per_epoch([40], 32, 20, None) == 20


def test_empty_domains_are_refused():
    train, val = blobs("s", 60, 1), blobs("v", 30, 2)
    with pytest.raises(DataError, match="empty"):
        train_classifier(mlp(), train.subset(np.arange(0)), val, settings())
    with pytest.raises(DataError, match="validation"):
        train_classifier(mlp(), train, val.subset(np.arange(0)), settings())


def test_batch_stream_is_seeded_and_covers_every_sample_once_per_pass():
    dom = blobs("s", 30, 1)
    a, b = BatchStream(dom, 10, 4, "x"), BatchStream(dom, 10, 4, "x")
    seen = []
    for _ in range(3):
        xa, ya = a.next(torch.device("cpu"))
        xb, yb = b.next(torch.device("cpu"))
        assert torch.equal(xa, xb)
        seen.extend(xa[:, 0].tolist())
    assert sorted(seen) == sorted(dom.x[:, 0].tolist())
    other = BatchStream(dom, 10, 4, "y").next(torch.device("cpu"))[0]
    assert not torch.equal(other, BatchStream(dom, 10, 4, "x").next(torch.device("cpu"))[0])


def test_holdout_split_is_stratified_disjoint_and_refuses_tiny_classes():
    dom = blobs("t", 30, 1)  # 10 per class
    train, held = holdout_split(dom, 0.2, seed=0)
    assert len(train) == 24 and len(held) == 6
    assert held.class_counts().tolist() == [2, 2, 2]
    assert not set(map(tuple, train.x.tolist())) & set(map(tuple, held.x.tolist()))
    tiny = blobs("t", 6, 1)  # 2 per class
    same, none = holdout_split(tiny, 0.2, seed=0)
    assert none is None and len(same) == 6


def test_device_handling():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="cuda"):
            resolve_device("cuda")


def test_frozen_modules_stay_in_eval_mode_when_training():
    model = lenet()
    freeze(model.blocks[0])
    train_mode(model)
    assert model.training and not model.blocks[0].training
    assert all(not p.requires_grad for p in model.blocks[0].parameters())
    assert all(p.requires_grad for p in model.head.parameters())


def test_settings_reject_unknown_keys():
    with pytest.raises(Exception, match="extra"):
        TrainSettings(epochs=1, bogus=2)


def test_annealed_schedule_lowers_the_learning_rate_as_training_progresses():
    from transferlab.training.loop import annealed_lr_factor

    assert annealed_lr_factor(0.0) == 1.0
    assert annealed_lr_factor(1.0) == pytest.approx(11 ** -0.75)
    train, val = blobs("s", 120, 1), blobs("v", 30, 2)
    constant = train_classifier(mlp(), train, val, settings(epochs=4, patience=4))
    annealed = train_classifier(mlp(), train, val, settings(epochs=4, patience=4, lr_schedule="annealed"))
    assert [h["lr"] for h in constant.history] == [3e-3] * 4
    lrs = [h["lr"] for h in annealed.history]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] < 3e-3 and lrs[-1] > 3e-3 * 11 ** -0.75
    assert annealed.history[-1]["loss"] < annealed.history[0]["loss"]  # it still learns


class _OneHotByValue(torch.nn.Module):
    """Predicts class round(x) with certainty: a perfect classifier of a pool whose input is its class."""

    def forward(self, x):
        return -100.0 * (x[:, :1] - torch.arange(3.0)).pow(2)


def test_information_maximisation_scorer_sees_every_class_of_a_class_sorted_pool():
    from transferlab.training import information_maximization_scorer

    pool = np.repeat(np.arange(3, dtype=np.float32), 1000)[:, None]  # sorted by class, as an ImageFolder tree
    score = information_maximization_scorer(pool, max_samples=2000).score(_OneHotByValue(), "cpu")
    # Every class in about equal share: H(mean) ≈ log 3, the first 2,000 would give log 2.
    assert score == pytest.approx(np.log(3), abs=0.01)
    again = information_maximization_scorer(pool, max_samples=2000).score(_OneHotByValue(), "cpu")
    assert again == score


def test_after_step_runs_once_per_optimiser_update():
    from transferlab.training import param_group, run_training
    from transferlab.training.evaluation import Scorer

    train = blobs("s", 64, 1)
    model = mlp()
    calls = []
    stream = BatchStream(train, 16, 0, "train")

    def step(s):
        x, y = s.batches["train"]
        return {"loss": torch.nn.functional.cross_entropy(model(x), y)}

    run_training(model, [param_group(model.parameters())], step, {"train": stream},
                 Scorer("constant", lambda m, d: 0.0, keep="last"), settings(epochs=3), 5,
                 after_step=lambda: calls.append(1))
    assert len(calls) == 15


def test_augmented_pretraining_trains_on_augmented_batches_and_is_reproducible():
    train, val = images("s", 96, 1), images("v", 30, 2)
    plain = train_classifier(lenet(), train, val, settings(epochs=2)).model
    weak = train_classifier(lenet(), train, val, settings(epochs=2, augment="weak")).model
    again = train_classifier(lenet(), train, val, settings(epochs=2, augment="weak")).model
    w_plain, w_weak, w_again = (next(m.parameters()) for m in (plain, weak, again))
    assert torch.equal(w_weak, w_again) and not torch.equal(w_weak, w_plain)


def test_augment_settings_are_checked():
    with pytest.raises(Exception, match="augment"):
        TrainSettings(augment="medium")
    with pytest.raises(Exception, match="cutout"):
        TrainSettings(augmentation={"cutout": 2.0})
