"""select's choice between direct and transitive adaptation, from hand-made similarity reports, and
the params errors of transitive transfer naming their key."""

import pytest

from tasks.select import transitive_choice
from transferlab.config import parse_params
from transferlab.errors import ConfigError
from transferlab.selection import SelectionConfig

CHAIN = {"intermediates": ["I"], "feature_layer": "fc",
         "mmd": {"source": {"source": 0, "I": 0.4, "target": 1.0}, "I": {"source": 0.4, "I": 0, "target": 0.5},
                 "target": {"source": 1.0, "I": 0.5, "target": 0}}}


def _report(**changes):
    return {"road": "domain-adaptation", "mmd": {"p_value": 0.001}, "transitive": CHAIN, **changes}


def test_a_good_stone_is_taken_with_the_chosen_method_as_hop_method():
    choice = transitive_choice(_report(), "dann", SelectionConfig())
    assert choice["use"] and choice["chain"] == ["I"] and choice["hop_method"] == "dann"
    assert choice["candidates"] == ["I"] and "fc" in choice["distance"]


def test_no_hops_for_a_new_task_a_method_that_needs_labels_or_no_source_data():
    assert "new task" in transitive_choice(_report(road="task-transfer"), "dann", SelectionConfig())["reason"]
    labelled = transitive_choice(_report(), "finetune", SelectionConfig())
    assert not labelled["use"] and "'finetune' does not adapt to unlabelled data" in labelled["reason"]
    st = transitive_choice(_report(), "finetune", SelectionConfig(transitive={"hop_method": "self-training"}))
    assert st["use"] and st["hop_method"] == "self-training"
    ensemble = transitive_choice(_report(), "ensemble", SelectionConfig())  # one network per hop, not several
    assert not ensemble["use"] and "'ensemble' combines several finished models" in ensemble["reason"]
    skipped = transitive_choice(_report(transitive={"skipped": "there is no source data"}), "shot", SelectionConfig())
    assert not skipped["use"] and "no source data" in skipped["reason"]


@pytest.mark.parametrize("raw, key", [
    ({"data": {"intermediate": [{"name": "usps", "classes": ["1", "2"]}]}}, "data.intermediate.0"),
    ({"data": {"intermediate": [{"name": "usps", "colour": 1}]}}, "data.intermediate.0.colour"),
    ({"select": {"transitive": {"hop_method": "finetune"}}}, "select.transitive.hop_method"),
    ({"select": {"transitive": {"max_hop_ratio": 0}}}, "select.transitive.max_hop_ratio"),
    ({"adapt": {"self_training": {"drop_fraction": 1}}}, "adapt.self_training.drop_fraction"),
])
def test_bad_transitive_params_name_their_key(raw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_params(raw)


def test_no_intermediate_is_the_default():
    params = parse_params({})
    assert params.data.intermediate == [] and params.select.transitive.force is None
