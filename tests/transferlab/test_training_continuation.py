import pytest
import torch
from synthetic_domains import blob_data, blobs, mlp

from transferlab.methods import get_method
from transferlab.training import TrainSettings, train_classifier
from transferlab.training.continuation import Continuation, continuing


def settings(**kw):
    base = dict(epochs=4, batch_size=32, lr=3e-3, patience=10, min_steps_per_epoch=5, seed=0,
                lr_schedule="annealed", schedule_epochs=3)
    return TrainSettings(**{**base, **kw})


def weights(state):
    return torch.cat([v.flatten().float() for v in state.model.values()])


def test_a_paused_run_continues_to_the_same_weights_as_one_never_paused():
    train, val = blobs("s", 240, 1), blobs("v", 60, 2)
    whole = Continuation()
    with continuing(whole):
        train_classifier(mlp(), train, val, settings(epoch_limit=2.5))
    paused = Continuation()
    with continuing(paused):
        first = train_classifier(mlp(), train, val, settings(epoch_limit=0.75))
    assert paused.state.step == 6  # 8 steps per epoch
    with continuing(paused):
        second = train_classifier(mlp(), train, val, settings(epoch_limit=2.5))
    assert paused.state.step == whole.state.step == 20
    assert torch.equal(weights(paused.state), weights(whole.state))
    # The continued run's record starts with the first part's and adds only what it trained.
    assert second.history[:len(first.history)] == first.history
    assert sum(h["epoch_fraction"] for h in second.history) == pytest.approx(2.5)
    assert [h["epoch"] for h in second.history] == [1, 1, 2, 3]


def test_an_adversarial_run_continues_with_its_discriminator_and_both_streams():
    data = blob_data(offset=3.0, labels_per_class=0, unlabelled=150)
    source = train_classifier(mlp(), data.source_train, data.source_val, TrainSettings(epochs=2, batch_size=32)).model
    dann = get_method("dann")
    cfg = settings(epochs=6, schedule_epochs=4)
    whole, paused = Continuation(), Continuation()
    with continuing(whole):
        dann().fit(source, data, None, cfg.model_copy(update={"epoch_limit": 3}))
    for limit in (1.2, 2, 3):
        with continuing(paused):
            dann().fit(source, data, None, cfg.model_copy(update={"epoch_limit": limit}))
    assert torch.equal(weights(paused.state), weights(whole.state))
    assert all(torch.equal(a, b) for a, b in zip(paused.state.aux[0].values(), whole.state.aux[0].values()))
    # Without the continuation the discriminator and optimiser would start over: other weights.
    fresh = Continuation()
    with continuing(fresh):
        dann().fit(source, data, None, cfg.model_copy(update={"epoch_limit": 1.8}))
    assert not torch.equal(weights(fresh.state), weights(whole.state))


def test_a_continuation_refuses_a_different_schedule_and_a_second_run():
    train, val = blobs("s", 240, 1), blobs("v", 60, 2)
    state = Continuation()
    with continuing(state):
        train_classifier(mlp(), train, val, settings(epoch_limit=1))
    with continuing(state), pytest.raises(ValueError, match="cannot continue"):
        train_classifier(mlp(), train, val, settings(epoch_limit=2, schedule_epochs=4))
    with continuing(Continuation()), pytest.raises(RuntimeError, match="two training runs"):
        train_classifier(mlp(), train, val, settings(epoch_limit=1))
        train_classifier(mlp(), train, val, settings(epoch_limit=1))
