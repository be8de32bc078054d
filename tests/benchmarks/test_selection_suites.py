"""The selection benchmark's held-out suite is frozen: its scenario list and the definition of every
pair in it. A change here must come with a reason in the commit (issue 23): the held-out suite
exists so that defaults cannot drift toward what they do well on."""

import hashlib
from pathlib import Path

from benchmarks.selection_suites import (
    HELD_OUT,
    SUITES,
    TUNING,
    held_out_pairs,
    tuning_pairs,
)

FROZEN_HELD_OUT = (
    ("mnist→blur 0.6", 2), ("mnist→rescale 0.7", 3), ("mnist→noise 0.6", 2), ("mnist→invert", 3),
    ("usps→mnist rotate 0.5", 2), ("usps→uci-digits", 3), ("uci-digits→mnist5k", 2), ("mnist5k→usps", 3),
    ("usps blur 0.5→mnist rotate 0.4", 2), ("mnist→colour-background 0.5 (RGB)", 2),
    ("mnist→colour-background 0.9 (RGB)", 3), ("uci-digits vectors→+noise 0.8", 2),
    ("mnist5k 8×8 vectors→uci-digits vectors", 3),
)
# sha256 of the pairs' definitions (domain specs with their shifts, input form, noise, row split).
FROZEN_DEFINITIONS = "116e8459b6aeefd349484cadd8d5d5c2f49119b184613228767032a6deaeb11b"


def _definitions_hash() -> str:
    pairs = held_out_pairs(Path("D"))
    rows = sorted((k, v.source.model_dump_json(), v.target.model_dump_json(), v.form, v.target_noise, v.split_rows)
                  for k, v in pairs.items())
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def test_held_out_suite_is_frozen():
    assert HELD_OUT == FROZEN_HELD_OUT
    assert _definitions_hash() == FROZEN_DEFINITIONS
    assert SUITES["held-out"] is HELD_OUT


def test_held_out_suite_is_disjoint_from_tuning_and_covers_the_required_kinds():
    held, tuning = held_out_pairs(Path("D")), tuning_pairs(Path("D"))
    assert len(HELD_OUT) >= 12
    assert not set(held) & set(tuning)
    assert not {sd for _, sd in HELD_OUT} & {sd for _, sd in TUNING}  # other seeds too
    forms = {held[name].form for name, _ in HELD_OUT}
    assert {"vectors", "rgb", "grey"} <= forms
    assert {name for name, _ in HELD_OUT} == set(held)
