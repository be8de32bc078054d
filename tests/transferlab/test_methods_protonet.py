"""protonet: the prototypical loss, the exact prototype head, episodes, refusals, behaviour."""

import math

import numpy as np
import pytest
import torch
from synthetic_domains import images, lenet

from transferlab.data.types import Domain
from transferlab.errors import ConfigError, MethodRequirementError
from transferlab.methods import AdaptationData, get_method
from transferlab.methods.protonet import (
    EpisodeStream,
    embed,
    episode_shape,
    meta_training_classes,
    prototype_head,
    prototypes,
    prototypical_loss,
)
from transferlab.models import ModelSpec, build_model
from transferlab.training import TrainSettings, accuracy, train_classifier
from transferlab.training.continuation import Continuation, continuing

SETTINGS = TrainSettings(epochs=5, batch_size=32, lr=3e-3, patience=5, min_steps_per_epoch=10, max_steps_per_epoch=20)
DIM = 8
# Classes differ only by their mean in the first two coordinates; the other six are class-free
# noise four times as wide. The source classes need both informative coordinates, and the new
# target classes differ along the first of them: an embedding that keeps those two and drops the
# noise serves both, while a network trained from a few target labels cannot tell which
# coordinates are noise.
SOURCE_MEANS = {"s0": (-4, -4), "s1": (0, -4), "s2": (4, -4), "s3": (-4, 4), "s4": (0, 4), "s5": (4, 4)}
TARGET_MEANS = {"t0": (-4, 0), "t1": (0, 0), "t2": (4, 0)}
MEANS = {**SOURCE_MEANS, **TARGET_MEANS}


def domain(name: str, classes: tuple[str, ...], per_class: int, seed: int) -> Domain:
    rng = np.random.default_rng(seed)
    y = np.arange(per_class * len(classes)) % len(classes)
    x = rng.normal(0, 2.5, size=(len(y), DIM))
    x[:, :2] = rng.normal(0, 0.7, size=(len(y), 2)) + np.array([MEANS[c] for c in classes])[y]
    return Domain(name, x.astype(np.float32), y.astype(np.int64), classes)


SOURCE = tuple(SOURCE_MEANS)
NEW = tuple(TARGET_MEANS)
PARTLY = ("t0", "t1", "s2")  # two new classes and one the source has


def task(target: tuple[str, ...] = NEW, labels_per_class: int = 5) -> AdaptationData:
    return AdaptationData(domain("source", SOURCE, 60, 1), domain("source-val", SOURCE, 20, 2),
                          domain("target", target, labels_per_class, 3 + labels_per_class), None)


@pytest.fixture(scope="module")
def source():
    data = task()
    spec = ModelSpec(arch="mlp", input_dim=DIM, hidden=32, num_classes=len(SOURCE), classes=list(SOURCE))
    return train_classifier(build_model(spec, seed=0), data.source_train, data.source_val, SETTINGS).model


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- the formulas

def test_the_prototypical_loss_matches_a_hand_computed_value():
    support = np.array([[0, 0], [2, 0], [0, 2], [0, 4]], dtype=np.float32)  # prototypes (1, 0) and (0, 3)
    support_y = np.array([0, 0, 1, 1])
    query = np.array([[1, 1], [0, 2], [1, 2.5]], dtype=np.float32)
    query_y = np.array([0, 1, 0])  # the third query is nearer the other prototype
    # Squared distances to (c0, c1): (1, 5), (5, 1), (6.25, 1.25); loss_i = d_true + log Σ_k exp(-d_k).
    d = np.array([[1, 5], [5, 1], [6.25, 1.25]])
    per_query = d[np.arange(3), query_y] + np.log(np.exp(-d).sum(1))
    expected = per_query.mean()
    assert expected == pytest.approx((2 * math.log(1 + math.exp(-4)) + 5 + math.log(1 + math.exp(-5))) / 3)
    assert expected == pytest.approx(1.681005, abs=1e-6)
    loss, acc = prototypical_loss(torch.from_numpy(support), torch.from_numpy(support_y), torch.from_numpy(query),
                                  torch.from_numpy(query_y), 2)
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    assert acc.item() == pytest.approx(2 / 3)
    # The pin tells the usual mistakes apart: summed over queries, unsquared distances, sign flipped.
    assert abs(per_query.sum() - expected) > 1 and abs(loss.item() * 3 - expected) > 1
    unsquared = np.sqrt(d)
    assert abs((unsquared[np.arange(3), query_y] + np.log(np.exp(-unsquared).sum(1))).mean() - expected) > 0.1


def test_prototypes_are_the_class_means():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0], [10.0, 0.0]])
    c = prototypes(f, torch.tensor([0, 0, 1]), 2)
    assert torch.equal(c, torch.tensor([[2.0, 3.0], [10.0, 0.0]]))


def test_the_prototype_head_is_nearest_prototype_up_to_one_constant_per_sample():
    gen = torch.Generator().manual_seed(0)
    f, c = torch.randn(50, 6, generator=gen, dtype=torch.float64), torch.randn(4, 6, generator=gen, dtype=torch.float64)
    head = prototype_head(c.float()).double()
    assert torch.equal(head.weight, (2 * c).float().double())
    logits = head(f)
    neg_d = -((f[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    # logits = -‖f - c_k‖² + ‖f‖²: the offset is the same for every class of a sample ...
    offset = logits - neg_d
    assert torch.allclose(offset, (f ** 2).sum(1, keepdim=True).expand_as(offset), atol=1e-5)
    # ... so differences between classes, the softmax and the argmax are those of the distances.
    assert torch.allclose(logits[:, 1:] - logits[:, :1], neg_d[:, 1:] - neg_d[:, :1], atol=1e-5)
    assert torch.allclose(logits.softmax(1), neg_d.softmax(1), atol=1e-6)
    assert torch.equal(logits.argmax(1), neg_d.argmax(1))


# --------------------------------------------------------------------------- episodes

def partly_overlapping_stream(seed: int = 0, n_way: int = 3, n_shot: int = 2, n_query: int = 4) -> EpisodeStream:
    data = task(PARTLY)
    shape = episode_shape(data.source_train, meta_training_classes(data), n_way, n_shot, n_query)
    return EpisodeStream(data.source_train, shape, seed)


def test_meta_training_classes_exclude_every_target_class_by_name():
    assert meta_training_classes(task(NEW)) == SOURCE
    assert meta_training_classes(task(PARTLY)) == ("s0", "s1", "s3", "s4", "s5")


def test_episodes_never_include_a_target_class_and_are_n_way_k_shot_q_query():
    stream = partly_overlapping_stream()
    source = stream.domain
    allowed = {source.classes.index(c) for c in ("s0", "s1", "s3", "s4", "s5")}
    seen = set()
    for _ in range(300):
        classes, idx = stream.sample_indices()
        assert set(classes.tolist()) <= allowed and len(set(classes.tolist())) == 3
        assert idx.shape == (3, 2 + 4) and len(np.unique(idx)) == idx.size
        assert (source.y[idx] == classes[:, None]).all()
        seen |= set(classes.tolist())
    assert seen == allowed
    saved = stream.state()
    expected_classes, idx = stream.sample_indices()
    stream.restore(saved)
    xs, ys, xq, yq, classes = stream.next(torch.device("cpu"))
    assert xs.shape == (3 * 2, DIM) and xq.shape == (3 * 4, DIM)
    assert ys.tolist() == [0, 0, 1, 1, 2, 2] and yq.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert classes.tolist() == expected_classes.tolist()
    assert torch.equal(xs, torch.from_numpy(source.x[idx[:, :2].ravel()]))
    assert torch.equal(xq, torch.from_numpy(source.x[idx[:, 2:].ravel()]))


def test_episode_sizes_are_capped_by_the_classes_and_their_samples():
    data = task(PARTLY)
    shape = episode_shape(data.source_train, meta_training_classes(data), n_way=20, n_shot=10, n_query=100)
    assert (shape.n_way, shape.n_shot, shape.n_query) == (5, 10, 50)  # 5 classes of 60 samples
    assert episode_shape(data.source_train, meta_training_classes(data), 5, 60, 15) is None


def test_episodes_are_reproducible_from_the_seed_and_continue_after_restore():
    def draw(stream, n):
        return [np.concatenate([c, i.ravel()]) for c, i in (stream.sample_indices() for _ in range(n))]

    a, b, other = partly_overlapping_stream(0), partly_overlapping_stream(0), partly_overlapping_stream(1)
    assert all((x == y).all() for x, y in zip(draw(a, 20), draw(b, 20)))
    assert not all((x == y).all() for x, y in zip(draw(a, 20), draw(other, 20)))
    saved = a.state()
    ahead = draw(a, 10)
    resumed = partly_overlapping_stream(5)
    resumed.restore(saved)
    assert all((x == y).all() for x, y in zip(draw(resumed, 10), ahead))
    assert len(a) == (5 * 60) // (3 * 6)


def test_no_training_or_validation_episode_of_a_fit_includes_a_target_class(source, monkeypatch):
    drawn: list[set[str]] = []
    original = EpisodeStream.sample_indices

    def recording(self):
        classes, idx = original(self)
        names = self.domain.classes
        drawn.append({names[c] for c in classes} | {names[c] for c in self.domain.y[idx].ravel()})
        return classes, idx

    monkeypatch.setattr(EpisodeStream, "sample_indices", recording)
    result = get_method("protonet")().fit(source, task(PARTLY), {"val_episodes": 50}, SETTINGS)
    assert len(drawn) > 50 and set().union(*drawn) == {"s0", "s1", "s3", "s4", "s5"}
    assert result.model.spec.classes == list(PARTLY)


# --------------------------------------------------------------------------- refusals

def test_refuses_the_domain_adaptation_road(source):
    data = AdaptationData(domain("s", SOURCE, 60, 1), domain("v", SOURCE, 20, 2), domain("t", SOURCE, 5, 3), None)
    with pytest.raises(MethodRequirementError, match="'protonet'.*source's classes.*domain adaptation"):
        get_method("protonet")().fit(source, data, None, SETTINGS)


def test_refuses_without_source_data(source):
    data = AdaptationData(None, None, domain("t", NEW, 5, 3), None, source_classes=SOURCE)
    with pytest.raises(MethodRequirementError, match="'protonet' trains with source data"):
        get_method("protonet")().fit(source, data, None, SETTINGS)


def test_refuses_fewer_than_two_meta_training_classes(source):
    with pytest.raises(MethodRequirementError, match="'protonet' meta-trains.*fewer than 2 of them \\(1\\)"):
        get_method("protonet")().fit(source, task(("t0", "s0", "s1", "s2", "s3", "s4")), None, SETTINGS)
    with pytest.raises(MethodRequirementError, match="'protonet' needs at least 2 meta-training classes.*61"):
        get_method("protonet")().fit(source, task(), {"n_shot": 60}, SETTINGS)  # the source has 60 per class


def test_refuses_without_target_labels(source):
    data = AdaptationData(domain("s", SOURCE, 60, 1), domain("v", SOURCE, 20, 2), None, domain("u", NEW, 10, 4))
    with pytest.raises(MethodRequirementError, match="'protonet' needs labelled target samples"):
        get_method("protonet")().fit(source, data, None, SETTINGS)


def test_config_forbids_unknown_keys_and_has_the_documented_defaults():
    cfg = get_method("protonet").Config()
    assert (cfg.n_way, cfg.n_shot, cfg.n_query, cfg.finetune) == (5, None, 15, False)
    with pytest.raises(ConfigError, match="protonet.*n_ways"):
        get_method("protonet").make_config({"n_ways": 3})


# --------------------------------------------------------------------------- behaviour

@pytest.mark.parametrize("labels_per_class", [1, 5])
def test_beats_training_from_scratch_and_chance_on_new_classes(source, labels_per_class):
    before = state_of(source)
    data, test = task(labels_per_class=labels_per_class), domain("target-test", NEW, 100, 20)
    # 8 epochs: the validation-episode score peaks before the last one, so the checkpoint check below has teeth.
    result = get_method("protonet")().fit(source, data, None, SETTINGS.model_copy(update={"epochs": 8, "patience": 8}))
    scratch = get_method("target-only")().fit(source, data, None, SETTINGS).model
    proto, baseline = accuracy(result.model, test), accuracy(scratch, test)
    assert proto > baseline + 0.2 and proto > 1 / 3 + 0.5, (proto, baseline)
    assert result.model.spec.classes == list(NEW) and result.model.spec.num_classes == 3
    assert result.model.head.out_features == 3
    assert same(state_of(source), before)
    # The record is the episodic training's, one entry per epoch, chosen on validation episodes.
    assert [h["stage"] for h in result.history] == ["episodic"] * len(result.history)
    assert all({"loss", "episode_accuracy", "checkpoint_score"} <= set(h) for h in result.history)
    assert f"{labels_per_class}-shot episodes of the source validation split" in result.checkpoint_criterion
    # The kept weights are those of the first epoch with the best validation-episode score.
    scores = [h["checkpoint_score"] for h in result.history]
    first_best = result.history[scores.index(max(scores))]
    assert (result.best_epoch, result.best_score) == (first_best["epoch"], max(scores))
    assert result.best_epoch < len(result.history)


def test_the_returned_head_is_the_target_prototypes(source):
    data = task(labels_per_class=5)
    model = get_method("protonet")().fit(source, data, None, SETTINGS).model
    lab = data.target_labelled
    f = embed(model, lab.x)
    c = torch.stack([f[torch.from_numpy(lab.y == k)].mean(0) for k in range(3)])
    assert torch.allclose(model.head.weight, 2 * c, atol=1e-5)
    assert torch.allclose(model.head.bias, -(c ** 2).sum(1), atol=1e-4)
    nearest = ((f[:, None] - c[None]) ** 2).sum(-1).argmin(1)
    assert torch.equal(model(torch.from_numpy(lab.x)).argmax(1), nearest)


def test_finetune_trains_the_prototype_head_on_the_target_labels(source):
    data = task(labels_per_class=5)
    # Fine-tuning holds out one label per class, so its prototypes and episodes are 4-shot.
    plain = get_method("protonet")().fit(source, data, {"n_shot": 4}, SETTINGS).model
    logged: list[tuple[int, dict]] = []
    result = get_method("protonet")().fit(source, data, {"finetune": True}, SETTINGS,
                                          log=lambda step, m: logged.append((step, m)))
    stages = [h["stage"] for h in result.history]
    assert "episodic" in stages and stages[-1] == "finetune"
    # One log line per epoch of both stages, numbered on, the fine-tuning's metrics told apart.
    assert [step for step, _ in logged] == list(range(1, len(stages) + 1))
    assert all(("finetune_loss" in m) == (stage == "finetune") for (_, m), stage in zip(logged, stages))
    assert "fine-tuning: accuracy on 3 held-out labelled target" in result.checkpoint_criterion
    assert same(state_of(result.model.blocks), state_of(plain.blocks))  # the backbone stays as meta-trained
    assert accuracy(result.model, domain("target-test", NEW, 100, 20)) > 0.8


def test_a_paused_meta_training_continues_to_the_same_weights(source):
    data, cfg = task(labels_per_class=1), {"val_episodes": 20}
    settings = SETTINGS.model_copy(update={"epochs": 3, "patience": 10, "schedule_epochs": 3})
    whole, paused = Continuation(), Continuation()
    with continuing(whole):
        full = get_method("protonet")().fit(source, data, cfg, settings)
    for limit in (1.5, 3):
        with continuing(paused):
            limited = settings.model_copy(update={"epoch_limit": limit})
            resumed = get_method("protonet")().fit(source, data, cfg, limited)
    assert same(paused.state.model, whole.state.model)
    assert same(state_of(resumed.model), state_of(full.model))


def test_runs_on_lenet_images_with_a_new_task():
    src = images("s", 60, 1)
    tgt = images("t", 12, 2, invert=True)
    tgt = Domain("t", tgt.x, tgt.y, ("x", "y", "z"))
    source = lenet()
    result = get_method("protonet")().fit(source, AdaptationData(src, src, tgt, None), {"val_episodes": 5},
                                          TrainSettings(epochs=1, batch_size=8, max_steps_per_epoch=2))
    assert result.model(torch.from_numpy(tgt.x[:2])).shape == (2, 3)
    assert result.model.spec.classes == ["x", "y", "z"]
