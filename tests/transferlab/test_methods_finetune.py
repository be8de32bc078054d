import pytest
from synthetic_domains import blob_data, blob_test, mlp

from transferlab.errors import MethodRequirementError
from transferlab.methods import get_method
from transferlab.training import TrainSettings, accuracy, train_classifier

SETTINGS = TrainSettings(epochs=5, batch_size=16, lr=3e-3, patience=5, min_steps_per_epoch=8)


@pytest.fixture(scope="module")
def source_and_data():
    data = blob_data(offset=2.0, labels_per_class=10)
    source = train_classifier(mlp(), data.source_train, data.source_val, SETTINGS).model
    return source, data


def test_finetune_learns_the_target_and_beats_source_only(source_and_data):
    source, data = source_and_data
    result = get_method("finetune")().fit(source, data, None, SETTINGS)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    test = blob_test(offset=2.0)
    assert accuracy(result.model, test) > accuracy(source, test)
    assert "held-out labelled target" in result.checkpoint_criterion


def test_finetune_moves_the_backbone_less_than_the_head_with_a_small_multiplier(source_and_data):
    source, data = source_and_data
    cfg = {"new_head": False, "backbone_lr_mult": 0.01, "head_lr_mult": 1.0}
    result = get_method("finetune")().fit(source, data, cfg, SETTINGS.model_copy(update={"epochs": 1}))
    backbone = (result.model.blocks[0][0].weight - source.blocks[0][0].weight).abs().max()
    head = (result.model.head.weight - source.head.weight).abs().max()
    assert 0 < backbone < head


def test_finetune_refuses_zero_target_labels(source_and_data):
    source, _ = source_and_data
    with pytest.raises(MethodRequirementError, match="'finetune' needs labelled target samples"):
        get_method("finetune")().fit(source, blob_data(labels_per_class=0), None, SETTINGS)
