"""The validator study's summary numbers, on hand-made rows."""

import math

import pytest

from benchmarks.selection_study import ENSEMBLE, STUDIED, _correlations, summarise


def test_rank_correlations_by_hand():
    # ranks (1, 2, 3) against (1, 3, 2): rho = 1 - 6*2 / (3*8) = 0.5; tau = (2 - 1) / 3.
    rho, tau = _correlations([1.0, 2.0, 3.0], [0.1, 0.3, 0.2])
    assert rho == pytest.approx(0.5) and tau == pytest.approx(1 / 3)
    assert all(math.isnan(x) for x in _correlations([1.0, 1.0, 1.0], [0.1, 0.3, 0.2]))


def _row(regret, spearman, committee_acc, ens_acc):
    return {"best_acc": 0.8, "source_only_acc": 0.6, "accuracy": {ENSEMBLE: ens_acc},
            "validators": {v: {"pick": "a", "regret": regret, "spearman": spearman, "kendall": spearman}
                           for v in STUDIED},
            "committee": {"ensemble": True, "acc": committee_acc, "regret": 0.8 - committee_acc}}


def test_summary_means_worsts_and_losses_to_source_only():
    s = summarise([_row(0.1, 0.5, 0.75, 0.7), _row(0.3, math.nan, 0.5, 0.8)])
    assert s["dev"]["regret"] == pytest.approx(20.0) and s["dev"]["worst"] == pytest.approx(30.0)
    assert s["dev"]["below_source"] == pytest.approx(10.0)  # picks at 70 and 50 against source-only 60: 10 below once
    assert s["dev"]["spearman"] == pytest.approx(0.5)  # the NaN scenario is skipped
    assert s["committee"]["regret"] == pytest.approx(17.5) and s["committee"]["below_source"] == pytest.approx(10.0)
    assert s["always ensemble"]["regret"] == pytest.approx(5.0) and s["always ensemble"]["worst"] == pytest.approx(10.0)
