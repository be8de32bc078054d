import pytest
import torch
from synthetic_domains import blob_data, blob_test, mlp

from transferlab.errors import MethodRequirementError
from transferlab.methods import get_method
from transferlab.training import TrainSettings, accuracy, train_classifier

SETTINGS = TrainSettings(epochs=4, batch_size=16, lr=3e-3, patience=4, min_steps_per_epoch=8)


def test_source_only_returns_the_source_model_unchanged():
    data = blob_data()
    source = train_classifier(mlp(), data.source_train, data.source_val, SETTINGS).model
    result = get_method("source-only")().fit(source, data, None, SETTINGS)
    assert result.model is not source
    for (k, a), (_, b) in zip(source.state_dict().items(), result.model.state_dict().items()):
        assert torch.equal(a, b), k
    assert result.best_epoch == 0 and result.history == []
    assert result.best_score == pytest.approx(accuracy(source, data.source_val))
    assert "source validation" in result.checkpoint_criterion


def test_target_only_learns_from_target_labels_alone_from_fresh_weights():
    data = blob_data(offset=2.0, labels_per_class=10)
    source = mlp(seed=7)
    result = get_method("target-only")().fit(source, data, None, SETTINGS)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert "held-out labelled target" in result.checkpoint_criterion
    assert accuracy(result.model, blob_test(offset=2.0)) > 0.8
    # fresh initialisation, not the source weights
    assert not torch.equal(result.model.head.weight, source.head.weight)


def test_target_only_refuses_without_target_labels():
    with pytest.raises(MethodRequirementError, match="target-only.*labelled target"):
        get_method("target-only")().fit(mlp(), blob_data(labels_per_class=0), None, SETTINGS)


def test_two_labels_per_class_train_on_all_and_keep_the_last_epoch():
    data = blob_data(labels_per_class=2)
    result = get_method("target-only")().fit(mlp(), data, None, SETTINGS)
    assert result.checkpoint_criterion.startswith("last epoch")
    assert result.best_epoch == len(result.history) == SETTINGS.epochs


def test_a_target_of_new_classes_is_a_new_task_that_shared_label_methods_refuse():
    data = blob_data()
    lab = data.target_labelled
    other = type(lab)("t", lab.x, lab.y, ("x", "y", "z"))
    new_task = type(data)(data.source_train, data.source_val, other, None)
    assert new_task.road == "task-transfer"
    with pytest.raises(MethodRequirementError, match="source-only.*new task"):
        get_method("source-only")().fit(mlp(), new_task, None, SETTINGS)
    model = get_method("target-only")().fit(mlp(), new_task, None, SETTINGS).model
    assert model.spec.classes == ["x", "y", "z"]
