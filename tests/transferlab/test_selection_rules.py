import json
import math

import pytest
from pydantic import ValidationError

from transferlab.errors import ConfigError, DataError
from transferlab.selection import SelectionConfig, freeze_depth, select_by_rules

CFG = SelectionConfig()
LOG10 = math.log(10)


def report(p=0.001, norm=0.1, a=1.0, leep=None, layers=None):
    r = {
        "mmd": {"mmd2": 0.02, "p_value": p, "normalised": norm, "ci": [0.01, 0.03]},
        "layers": layers if layers is not None else [
            {"layer": "input", "mmd2": 0.3, "p_value": 0.001, "normalised": 0.5},
            {"layer": "conv1", "mmd2": 0.01, "p_value": 0.2, "normalised": 0.05},
            {"layer": "conv2", "mmd2": 0.02, "p_value": 0.01, "normalised": 0.1},
            {"layer": "fc", "mmd2": 0.2, "p_value": 0.001, "normalised": 0.45},
            {"layer": "logits", "mmd2": 0.3, "p_value": 0.001, "normalised": 0.5},
        ],
        "a_distance": a,
        "transferability": None if leep is None else {"leep": leep, "logme": 0.5, "hscore": 1.0, "nce": leep},
    }
    return r


def by_name(sel):
    return {c["method"]: c for c in sel.candidates}


def test_no_significant_shift_means_source_only():
    sel = select_by_rules(report(p=0.4), 10, 10, CFG)
    assert sel.method == "source-only" and sel.mode == "rule"
    assert any("no adaptation needed" in r.lower() for r in sel.reasons)
    assert by_name(sel)["source-only"]["score"] == 1.0


def test_small_shift_with_few_labels_transfers_layers_with_k_from_profile():
    sel = select_by_rules(report(norm=0.1, leep=-0.5), 10, 10, CFG)
    assert sel.method == "layer-transfer" and sel.settings == {"k": 2}
    assert any("conv1, conv2" in r for r in sel.reasons)


def test_small_shift_every_block_shared_means_linear_probe():
    layers = [{"layer": n, "mmd2": 0.0, "p_value": 0.5, "normalised": 0.02} for n in ("input", "conv1", "conv2", "fc")]
    sel = select_by_rules(report(layers=layers), 5, 10, CFG)
    assert sel.method == "linear-probe" and sel.settings == {}


def test_shift_from_first_block_or_no_profile_means_l2_sp_with_few_labels():
    layers = [{"layer": n, "mmd2": 0.1, "p_value": 0.001, "normalised": 0.5} for n in ("conv1", "conv2")]
    assert select_by_rules(report(norm=0.3, layers=layers), 5, 10, CFG).method == "l2-sp"
    sel = select_by_rules(report(norm=0.3, layers=[]), 5, 10, CFG)
    assert sel.method == "l2-sp" and any("no per-layer profile" in r for r in sel.reasons)


def test_plenty_of_labels_means_l2_sp_or_finetune():
    assert select_by_rules(report(norm=0.3, leep=-0.3), 100, 10, CFG).method == "l2-sp"
    sel = select_by_rules(report(norm=0.7, a=1.9, leep=-0.3), 100, 10, CFG)  # large shift, transferable
    assert sel.method == "finetune"
    assert not sel.warnings


def test_no_labels_means_unsupervised_with_all_uda_candidates():
    sel = select_by_rules(report(norm=0.3), 0, 10, CFG)
    assert sel.method == "dann"
    cands = by_name(sel)
    for m in ("dann", "cdan", "dan", "deep-coral", "source-only"):
        assert cands[m]["eligible"]
    for m in ("finetune", "l2-sp", "layer-transfer", "linear-probe", "target-only"):
        assert not cands[m]["eligible"] and cands[m]["score"] == 0.0
    assert select_by_rules(report(norm=0.3), 0, 10, SelectionConfig(unsupervised_method="cdan")).method == "cdan"


def test_no_labels_and_large_shift_warns():
    sel = select_by_rules(report(norm=0.9, a=1.95), 0, 10, CFG)
    assert sel.method == "dann" and any("negative transfer" in w for w in sel.warnings)


def test_transfer_predicted_to_hurt_means_target_only_with_warning():
    leep_low = -0.9 * LOG10  # rescaled transferability 0.1
    sel = select_by_rules(report(norm=0.8, a=1.9, leep=leep_low), 20, 10, CFG)
    assert sel.method == "target-only"
    assert any("Negative transfer predicted" in w for w in sel.warnings)
    assert sel.evidence["transfer_predicted_to_hurt"] is True
    assert sel.evidence["transferability"]["rescaled"] == pytest.approx(0.1)
    # the same shift with too few labels: finetune, and both warnings
    few = select_by_rules(report(norm=0.8, a=1.9, leep=leep_low), 3, 10, CFG)
    assert few.method == "finetune" and len(few.warnings) == 2
    # the same shift but a well-transferring source: no target-only
    assert select_by_rules(report(norm=0.8, a=1.9, leep=-0.2), 20, 10, CFG).method == "l2-sp"


def test_a_distance_alone_can_make_a_shift_large():
    sel = select_by_rules(report(norm=0.1, a=1.99, leep=-2.2), 20, 10, CFG)
    assert sel.evidence["severity"] == "large" and sel.method == "target-only"


def test_force_method_overrides_with_a_reason():
    sel = select_by_rules(report(p=0.4), 10, 10, SelectionConfig(force_method="layer-transfer"))
    assert sel.method == "layer-transfer" and sel.settings == {"k": 2}
    assert sel.decided_by == "force_method"
    assert any("force_method" in r and "'source-only'" in r for r in sel.reasons)
    forced = select_by_rules(report(), 0, 10, SelectionConfig(force_method="finetune"))
    assert forced.method == "finetune" and any("needs target labels" in w for w in forced.warnings)


def test_missing_optional_keys_are_tolerated_and_output_is_json():
    sel = select_by_rules({"mmd": {"p_value": 0.01}}, 10, 10, CFG)
    assert sel.evidence["severity"] == "moderate" and sel.method == "l2-sp"
    d = json.loads(json.dumps(sel.to_dict()))
    assert set(d) >= {"method", "settings", "candidates", "reasons", "mode"}
    assert all(set(c) == {"method", "score", "eligible", "why"} for c in d["candidates"])


def test_bad_inputs():
    with pytest.raises(DataError, match="mmd.p_value"):
        select_by_rules({"mmd": {}}, 10, 10, CFG)
    with pytest.raises(ConfigError, match="labels_per_class"):
        select_by_rules(report(), -1, 10, CFG)
    with pytest.raises(ValidationError, match="small_shift"):
        SelectionConfig(small_shift=0.7, large_shift=0.5)
    with pytest.raises(ValidationError):
        SelectionConfig(alpah=0.1)


def test_freeze_depth_stops_before_largest_jump():
    layers = [{"layer": n, "normalised": m, "p_value": 0.001}
              for n, m in [("input", 0.9), ("b1", 0.02), ("b2", 0.25), ("b3", 0.27), ("b4", 0.9)]]
    d = freeze_depth(layers, layer_shift=0.3, layer_jump=0.15, alpha=0.05)
    # all of b1..b3 are below 0.3, but the jump 0.02 -> 0.25 at b2 ends the shared prefix
    assert d.k == 1 and d.n_blocks == 4 and "b2" in d.reason
    assert freeze_depth(layers, layer_shift=0.3, layer_jump=0.5, alpha=0.05).k == 3
    assert freeze_depth([{"layer": "logits", "normalised": 0.1}], layer_shift=0.3, layer_jump=0.1, alpha=0.05) is None


@pytest.mark.parametrize("m, level, says", [
    (0.199, "small", "normalised MMD 0.199 is below 0.2"),
    (0.2, "moderate", "normalised MMD 0.200 is between 0.2 and 0.6"),
    (0.599, "moderate", "normalised MMD 0.599 is between 0.2 and 0.6"),
    (0.6, "large", "normalised MMD 0.600 is at or above 0.6"),
    (0.9, "large", "normalised MMD 0.900 is at or above 0.6"),
])
@pytest.mark.parametrize("a", [None, 1.0, 1.6, 1.9])
def test_the_severity_sentence_agrees_with_the_severity_at_every_threshold(m, level, says, a):
    """The report read "The shift is large: normalised MMD 0.153 (small below 0.2 ...)": the
    A-distance had made it large, and the sentence did not say so."""
    from transferlab.selection.rules import shift_severity

    report = {"mmd": {"normalised": m}, "a_distance": a}
    got, sentence = shift_severity(report, SelectionConfig())
    a_large = a is not None and a >= 1.6
    assert got == ("large" if a_large else level)
    assert sentence.startswith(f"The shift is {got}: ")
    assert says in sentence
    if a is not None:
        assert f"proxy A-distance {a:.3f} is {'at or above' if a_large else 'below'} 1.6" in sentence
    if a_large and level != "large":
        assert f"which alone would make it {level}" in sentence  # the MMD's own grade, said as such
    else:
        assert "alone" not in sentence


def test_the_severity_sentence_without_an_mmd():
    from transferlab.selection.rules import shift_severity

    assert shift_severity({"a_distance": 1.7}, SelectionConfig()) == (
        "large", "The shift is large: the proxy A-distance 1.700 is at or above 1.6 (A-distance: large from 1.6).")
    level, sentence = shift_severity({"a_distance": 1.0}, SelectionConfig())
    assert level == "moderate" and "below 1.6 and there is no normalised MMD to grade it" in sentence


def test_the_test_sentence_names_the_feature_space_of_the_headline_mmd():
    named = dict(report(), mmd={**report()["mmd"], "features": "fc", "feature_space": "the source model's 'fc' features"})
    assert select_by_rules(named, 10, 10, CFG).reasons[0].startswith(
        "The MMD permutation test on the source model's 'fc' features finds a significant shift (p = 0.001")
    older = dict(report(), feature_layer="fc")  # a similarity.json from before mmd.feature_space
    assert "on the source model's 'fc' features" in select_by_rules(older, 10, 10, CFG).reasons[0]
    assert select_by_rules(report(), 10, 10, CFG).reasons[0].startswith("The MMD permutation test finds")
