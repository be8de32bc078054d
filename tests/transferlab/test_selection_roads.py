"""Rule mode on the task-transfer road and without source data: each row of their policy tables."""

import pytest

from transferlab.errors import DataError
from transferlab.selection import SelectionConfig, select_by_rules

CFG = SelectionConfig()


def new_task(depth_k=2, hurt=False, norm=0.3, source=("0", "1", "2", "3", "4"), target=("5", "6", "7")):
    depth = None if depth_k is None else {
        "k": depth_k, "n_blocks": 3, "block": ["conv1", "conv2", "fc"][depth_k - 1], "logme": 0.5,
        "input_logme": 0.6 if hurt else 0.1, "hurt": hurt, "blocks": ["conv1", "conv2", "fc"], "reason": "test"}
    return {"road": "task-transfer", "source_data": True, "mmd": {"p_value": 0.001, "normalised": norm},
            "a_distance": 1.0, "depth": depth,
            "label_spaces": {"source_classes": list(source), "target_classes": list(target), "sentence": "new task."}}


def by_name(sel):
    return {c["method"]: c for c in sel.candidates}


def test_a_new_task_never_offers_a_method_that_needs_the_source_classes():
    sel = select_by_rules(new_task(), 10, 3, CFG)
    cands = by_name(sel)
    for name in ("source-only", "dann", "cdan", "dan", "deep-coral"):
        assert not cands[name]["eligible"] and "new task" in cands[name]["why"]
    for name in ("target-only", "linear-probe", "layer-transfer", "l2-sp", "finetune", "protonet"):
        assert cands[name]["eligible"]
    assert sel.evidence["road"] == "task-transfer"


def test_the_transferability_peak_sets_the_depth():
    sel = select_by_rules(new_task(depth_k=2), 10, 3, CFG)
    assert sel.method == "layer-transfer" and sel.settings == {"k": 2}
    last = select_by_rules(new_task(depth_k=3), 10, 3, CFG)  # a peak at the last block still retrains it
    assert last.method == "layer-transfer" and last.settings == {"k": 2} and any("linear probe" in r for r in last.reasons)
    assert select_by_rules(new_task(depth_k=None), 10, 3, CFG).method == "l2-sp"


def test_few_labels_with_source_data_means_multitask():
    sel = select_by_rules(new_task(), 5, 3, CFG)
    assert sel.method == "multitask" and any("source task keeps the shared layers" in r for r in sel.reasons)
    assert select_by_rules(new_task(), 6, 3, CFG).method == "layer-transfer"
    assert select_by_rules(new_task(), 2, 3, SelectionConfig(few_shot_labels_per_class=1)).method == "layer-transfer"
    # Without source data there is no source task to train beside the new one.
    no_source = {**new_task(), "source_data": False}
    assert select_by_rules(no_source, 1, 3, CFG).method == "layer-transfer"
    cands = by_name(select_by_rules(no_source, 1, 3, CFG))
    assert not cands["multitask"]["eligible"] and not cands["protonet"]["eligible"]


def test_transfer_predicted_to_hurt_means_target_only_with_enough_labels():
    sel = select_by_rules(new_task(hurt=True), 10, 3, CFG)
    assert sel.method == "target-only" and any("Negative transfer predicted" in w for w in sel.warnings)
    few = select_by_rules(new_task(hurt=True), 3, 3, CFG)  # too few labels to trust the profile: warn only
    assert few.method == "multitask" and few.warnings


def test_on_a_new_task_the_profile_decides_whatever_the_input_shift():
    # Two different sets of classes always look far apart: the MMD severity does not pick the method.
    assert select_by_rules(new_task(norm=0.3), 60, 3, CFG).method == "layer-transfer"
    assert select_by_rules(new_task(norm=0.9), 60, 3, CFG).method == "layer-transfer"


def test_a_new_task_without_labels_is_refused():
    with pytest.raises(DataError, match="new task.*no labelled samples"):
        select_by_rules(new_task(), 0, 3, CFG)


def test_forcing_an_ineligible_method_on_a_new_task_warns():
    sel = select_by_rules(new_task(), 10, 3, SelectionConfig(force_method="dann"))
    assert sel.method == "dann" and sel.decided_by == "force_method"
    assert any("new task" in w for w in sel.warnings)


def source_free(bn=True, depth_k=None):
    depth = None if depth_k is None else {"k": depth_k, "n_blocks": 3, "hurt": False, "reason": "test",
                                          "blocks": ["a", "b", "c"]}
    return {"road": "domain-adaptation", "source_data": False, "affine_norm_layers": 4 if bn else 0,
            "normalisation": {"layers": [{"layer": "bn", "symmetric_kl": 0.4}] if bn else [],
                              "mean_symmetric_kl": 0.4 if bn else None},
            "predictions": {"confidence": 0.8, "class_spread": 0.9}, "depth": depth}


def test_without_source_data_or_labels_the_choice_is_source_free():
    sel = select_by_rules(source_free(), 0, 10, CFG)
    assert sel.method == "shot" and any("no MMD" in r for r in sel.reasons)
    cands = by_name(sel)
    for name in ("dann", "cdan", "dan", "deep-coral"):
        assert not cands[name]["eligible"] and "only a source model" in cands[name]["why"]
    assert cands["tent"]["score"] > 0.5 and cands["source-only"]["eligible"]
    assert select_by_rules(source_free(), 0, 10, SelectionConfig(source_free_method="tent")).method == "tent"
    # tent without normalisation layers falls back to shot, and says why.
    sel = select_by_rules(source_free(bn=False), 0, 10, SelectionConfig(source_free_method="tent"))
    assert sel.method == "shot" and any("tent cannot run" in r for r in sel.reasons)


def test_without_source_data_but_with_labels_the_profile_decides():
    assert select_by_rules(source_free(depth_k=1), 10, 10, CFG).method == "layer-transfer"
    assert select_by_rules(source_free(depth_k=3), 10, 10, CFG).method == "linear-probe"
    assert select_by_rules(source_free(depth_k=None), 10, 10, CFG).method == "l2-sp"
    assert select_by_rules(source_free(depth_k=1), 60, 10, CFG).method == "l2-sp"
