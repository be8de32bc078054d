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
