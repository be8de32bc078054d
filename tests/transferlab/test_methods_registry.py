import pytest
import torch
from synthetic_domains import blob_data, mlp

from transferlab.errors import ConfigError
from transferlab.methods import AdaptationData, Method, applicable_methods, get_method, list_methods
from transferlab.training import TrainSettings

ISSUE_METHODS = {
    "source-only", "target-only", "linear-probe", "finetune", "layer-transfer", "l2-sp", "distill",
    "progressive", "multitask", "mixed", "dann", "dan", "deep-coral", "cdan", "instance-weighting",
}


def test_every_method_of_the_issue_is_registered_with_its_declarations():
    methods = {m.name: m for m in list_methods()}
    assert ISSUE_METHODS <= set(methods)
    for name, cls in methods.items():
        assert issubclass(cls, Method)
        assert get_method(name) is cls
        assert cls.description
        assert isinstance(cls.needs_target_labels, bool) and isinstance(cls.uses_source, bool)
        if not cls.composite:  # the ensemble's members are its hyperparameters: it has no default set
            cls.Config()  # every hyperparameter has a default


def test_unknown_method_names_the_known_ones():
    with pytest.raises(ConfigError, match="unknown method 'nope'.*dann.*finetune"):
        get_method("nope")


def test_configs_forbid_unknown_keys_and_name_the_key():
    with pytest.raises(ConfigError, match="dann.*tradeoff"):
        get_method("dann").make_config({"tradeoff": 1.0})
    assert get_method("dann").make_config({"trade_off": 0.5}).trade_off == 0.5


def test_adaptation_data_has_no_test_split():
    fields = set(AdaptationData.__dataclass_fields__)
    assert fields == {"source_train", "source_val", "target_labelled", "target_unlabelled", "source_classes",
                      "class_attributes", "other_sources"}  # the attribute table: per class, never per sample
    from transferlab.data.adaptation import SourceCandidate

    # other sources: a name, the classes, and a reader of their (train, val) splits; no test split
    assert set(SourceCandidate.__dataclass_fields__) == {"name", "classes", "read"}
    data = blob_data()
    assert SourceCandidate.of("s", data.source_train, data.source_val).splits == (data.source_train, data.source_val)


@pytest.mark.parametrize("name", sorted(ISSUE_METHODS))
def test_every_method_runs_on_a_tiny_pair_and_never_touches_the_source_model(name):
    source = mlp()
    before = {k: v.clone() for k, v in source.state_dict().items()}
    data = blob_data(offset=2.0, labels_per_class=5, unlabelled=60)
    result = get_method(name)().fit(source, data, None, TrainSettings(epochs=1, batch_size=16, max_steps_per_epoch=2))
    assert result.checkpoint_criterion
    x = torch.from_numpy(data.source_val.x[:4])
    assert result.model(x).shape == (4, 3)
    assert result.model.features(x).shape[0] == 4
    for k, v in source.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_a_config_error_names_the_params_key_when_told_where_it_was_written():
    with pytest.raises(ConfigError, match=r"^adapt\.methods\.dann\.tradeoff: "):
        get_method("dann").make_config({"tradeoff": 1.0}, where="adapt.methods.dann")


def test_applicable_methods_follow_the_data_each_method_needs():
    everything = applicable_methods(blob_data(labels_per_class=5, unlabelled=60))
    # blob_data has the source's classes: a method for new classes only (protonet) cannot run on it.
    # ... nor one that trains on several candidate sources (multi-source): blob_data has one.
    # ... nor the ensemble, which is built from the finalists, never tried as a candidate.
    assert everything == sorted(m.name for m in list_methods()
                                if not m.new_task_only and not m.needs_several_sources and not m.composite)
    # tent adapts normalisation layers, and the mlp has none.
    assert "tent" in everything and "tent" not in applicable_methods(blob_data(labels_per_class=5), mlp())
    no_labels = applicable_methods(blob_data(labels_per_class=0, unlabelled=60))
    assert no_labels == sorted(m.name for m in list_methods()
                               if not m.needs_target_labels and not m.new_task_only and not m.needs_several_sources
                               and not m.composite)
    assert {"finetune", "target-only"}.isdisjoint(no_labels) and "dann" in no_labels
    no_pool = applicable_methods(blob_data(labels_per_class=5, unlabelled=0))
    assert "dann" not in no_pool and "finetune" in no_pool and "source-only" in no_pool
