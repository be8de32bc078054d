"""The selection benchmark's ensemble summary (with select.ensemble against never), on hand-made rows."""

from benchmarks.selection import ensemble_text


def _row(labels, split, chosen, ranker, best=0.8, source=0.6):
    return {"labels": labels, "committee_split": split, "regret": best - chosen, "best_acc": best,
            "ranker_acc": ranker, "source_only_acc": source, "chosen_acc": chosen}


def test_the_summary_compares_the_ensemble_with_the_rankers_pick_on_label_free_rows_only():
    rows = [_row(0, True, 0.78, 0.70), _row(0, False, 0.75, 0.75), _row(10, False, 0.10, 0.10)]
    text = ensemble_text(rows)
    assert "disagreed in 1 of 2 scenarios" in text
    assert "Mean regret without labels 3.50 points" in text  # (2 + 5) / 2: the labelled row is left out
    assert "never (the ranker's pick of the same trials) 7.50" in text  # (10 + 5) / 2
    assert "worst loss to source-only -10.0" in text and "ensemble 2.0 against the ranker's pick 10.0" in text
    assert ensemble_text([_row(10, False, 0.1, 0.1)]) == ""


def test_the_validator_comparison_pairs_each_variant_with_the_same_scenarios():
    from benchmarks.selection import validators_text

    def also(chosen, ranker, split, time_fraction, best=0.8):
        return {"chosen": "x", "chosen_acc": chosen, "ranker_acc": ranker, "committee_split": split,
                "regret": best - chosen, "time_fraction": time_fraction, "final_fraction": time_fraction / 2}

    rows = [{**_row(0, False, 0.70, 0.70), "pair": "a", "seed": 0, "chosen": "dann", "time_fraction": 0.5, "final_fraction": 0.3,
             "also": {"reverse": also(0.80, 0.78, True, 0.9)}},
            {**_row(0, True, 0.76, 0.74), "pair": "b", "seed": 1, "chosen": "cdan", "time_fraction": 0.4, "final_fraction": 0.4,
             "also": {"reverse": also(0.50, 0.50, False, 1.2)}}]
    text = "\n".join(validators_text(rows, "dev"))
    # (10 + 4) / 2; (10 + 6) / 2
    assert "| dev (the table above) | 7.00 | 8.00 | -10.0 | 1/2 | 50 % | 35 % on average (at most 40 %) |" in text
    # (0 + 30) / 2; (2 + 30) / 2; 0.6 - 0.5
    assert "| reverse | 15.00 | 16.00 | +10.0 | 1/2 | 120 % | 52 % on average (at most 60 %) |" in text
    assert "b s1 k=0: 4.0 (cdan), reverse 30.0 (x)" in text
    assert validators_text([{**rows[0], "also": {}}], "dev") == []


def test_a_variant_names_a_known_validator_and_known_methods():
    import argparse

    import pytest

    from benchmarks.selection import _variant
    from transferlab.errors import ConfigError

    assert _variant("reverse:+mcc,shot") == "reverse:+mcc,shot"
    with pytest.raises(argparse.ArgumentTypeError, match="unknown validator 'nope'"):
        _variant("nope")
    with pytest.raises(ConfigError):
        _variant("dev:+no-such-method")


def test_regret_goals_differ_with_and_without_labels():
    from benchmarks.selection import regret_goal_text

    rows = [_row(0, False, 0.79, 0.79), _row(0, False, 0.77, 0.77), _row(10, False, 0.785, 0.785)]
    assert regret_goal_text(rows) == ("without target labels 2.00, goal ≤ 1.5: NOT met; "
                                      "with target labels 1.50, goal ≤ 1.0: NOT met")
    assert regret_goal_text(rows[:1]) == "without target labels 1.00, goal ≤ 1.5: met"
