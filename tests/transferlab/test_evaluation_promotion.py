"""The one promotion rule on every combination of verdict and champion, and the promotion hold-out."""

import numpy as np
import pytest

from transferlab.errors import DataError
from transferlab.evaluation.promotion import Rival, promotion_decision, promotion_split

VERDICTS = ["positive-transfer", "no-significant-difference", "negative-transfer"]
# The candidate scores 0.80 on the promotion hold-out in every case.
CHAMPIONS = {
    "no champion": (2, None),
    "champion of other classes": (2, Rival("1", None, other_classes=True)),
    "champion better": (2, Rival("1", 0.90)),
    "champion equal": (2, Rival("1", 0.80 + 1e-9)),  # the same score read back from a text tag
    "champion worse": (2, Rival("1", 0.70)),
    "registration off": (None, Rival("1", 0.70)),
}
# (moved, the alias's version afterwards, words the reason must hold) for a positive verdict.
POSITIVE = {
    "no champion": (True, "2", "no champion yet"),
    "champion of other classes": (True, "2", "another task"),
    "champion better": (False, "1", "as good or better (80.00 % vs 90.00 %"),
    "champion equal": (False, "1", "as good or better"),
    "champion worse": (True, "2", "beats the champion v1 (80.00 % vs 70.00 %"),
    "registration off": (False, "1", "registration is off"),
}


@pytest.mark.parametrize("verdict", VERDICTS)
@pytest.mark.parametrize("case", list(CHAMPIONS))
def test_rule_on_every_verdict_and_champion(verdict, case):
    version, rival = CHAMPIONS[case]
    decision = promotion_decision(version, verdict, 0.80, rival, baseline="source-only")
    if verdict == "positive-transfer":
        moved, after, words = POSITIVE[case]
    elif case == "registration off":
        moved, after, words = False, "1", "registration is off"
    else:  # no significant gain: never promoted, whatever the champion
        moved, after, words = False, (None if rival is None else "1"), f"verdict on the promotion hold-out is {verdict}"
    assert decision.moved is moved
    assert decision.version == after
    assert words in decision.reason
    if verdict == "positive-transfer" and case != "registration off":
        assert "significant gain over source-only on the promotion hold-out" in decision.reason


def test_a_champion_that_cannot_be_scored_stays_and_the_champion_itself_is_not_moved():
    stuck = promotion_decision(2, "positive-transfer", 0.8, Rival("1", None))
    assert not stuck.moved and stuck.version == "1" and "could not be scored" in stuck.reason
    again = promotion_decision(3, "positive-transfer", 0.8, Rival("3", 0.8))
    assert not again.moved and again.version == "3" and "champion already" in again.reason


def test_promotion_split_is_stratified_deterministic_and_disjoint():
    y = np.repeat(np.arange(3), [50, 30, 20])
    split = promotion_split(y, 0.3, "ab" * 32)
    assert np.bincount(y[split.promotion]).tolist() == [15, 9, 6]
    assert np.intersect1d(split.promotion, split.report).size == 0
    assert np.union1d(split.promotion, split.report).tolist() == list(range(100))
    again = promotion_split(y, 0.3, "ab" * 32)
    assert again.promotion.tolist() == split.promotion.tolist() and again.sha256 == split.sha256
    other = promotion_split(y, 0.3, "cd" * 32)  # another test split: another cut, another name
    assert other.promotion.tolist() != split.promotion.tolist() and other.sha256 != split.sha256
    assert promotion_split(y, 0.4, "ab" * 32).sha256 != split.sha256
    assert split.to_dict() == {"share": 0.3, "promotion_n": 30, "report_n": 70, "sha256": split.sha256}


def test_promotion_split_of_tiny_classes_still_leaves_both_parts():
    split = promotion_split(np.arange(4), 0.3, "0" * 64)  # one sample per class rounds to none each
    assert split.promotion.size == 1 and split.report.size == 3
    with pytest.raises(DataError, match="too few"):
        promotion_split(np.array([0]), 0.3, "0" * 64)


def test_promotion_share_is_validated_in_params():
    from transferlab.config import parse_params
    from transferlab.errors import ConfigError

    assert parse_params({}).evaluate.promotion_share == 0.3
    assert parse_params({"evaluate": {"promotion_share": 0.5}}).evaluate.promotion_share == 0.5
    for bad in (0.0, 0.05, 0.9, "most"):
        with pytest.raises(ConfigError, match="evaluate.promotion_share"):
            parse_params({"evaluate": {"promotion_share": bad}})
