"""Label spaces decide the road; a domain spec can keep a task's classes of a dataset."""

import numpy as np
import pytest

from transferlab.data import (DOMAIN_ADAPTATION, TASK_TRANSFER, Domain, DomainSpec, label_spaces, load_domain,
                              reorder_classes, select_classes)
from transferlab.errors import DataError


def _domain(classes, n=12):
    x = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
    return Domain("d", x, np.arange(n) % len(classes), tuple(classes))


def test_same_names_in_any_order_are_domain_adaptation_and_others_a_new_task():
    assert label_spaces("abc", "cab").road == DOMAIN_ADAPTATION
    disjoint = label_spaces(["0", "1", "2"], ["3", "4"])
    assert disjoint.road == TASK_TRANSFER and disjoint.shared == () and "all new" in disjoint.sentence()
    partial = label_spaces(["0", "1", "2", "3"], ["2", "3", "4"])
    assert partial.road == TASK_TRANSFER
    assert partial.shared == ("2", "3") and partial.only_target == ("4",) and partial.only_source == ("0", "1")
    assert "shares 2" in partial.sentence()
    # Indices that agree mean nothing: only names do.
    assert label_spaces(["cat", "dog"], ["0", "1"]).road == TASK_TRANSFER


def test_a_label_space_needs_two_distinct_classes():
    with pytest.raises(DataError, match="duplicate"):
        label_spaces(["a", "a"], ["a", "b"])
    with pytest.raises(DataError, match="at least 2"):
        label_spaces(["a", "b"], ["a"])


def test_reorder_classes_reindexes_labels_to_the_source_order():
    d = _domain("abc")
    r = reorder_classes(d, ("c", "a", "b"))
    assert r.classes == ("c", "a", "b")
    assert [r.classes[i] for i in r.y] == [d.classes[i] for i in d.y]
    with pytest.raises(DataError, match="not a reordering"):
        reorder_classes(d, ("a", "b", "z"))


def test_select_classes_keeps_those_samples_reindexed_in_the_given_order():
    d = _domain("abcd")
    s = select_classes(d, ["d", "b"])
    assert s.classes == ("d", "b") and len(s) == 6
    assert [s.classes[i] for i in s.y] == [d.classes[i] for i in d.y if d.classes[i] in "db"]
    with pytest.raises(DataError, match="no class 'z'"):
        select_classes(d, ["a", "z"])
    with pytest.raises(DataError, match="twice"):
        select_classes(d, ["a", "a"])


def test_a_domain_spec_can_take_a_task_from_a_dataset():
    high = load_domain(DomainSpec(name="uci-digits", classes=["5", "6", "7", "8", "9"]))
    assert high.classes == ("5", "6", "7", "8", "9") and set(np.unique(high.y)) == {0, 1, 2, 3, 4}
    full = load_domain(DomainSpec(name="uci-digits"))
    assert len(high) == int(np.isin(full.y, [5, 6, 7, 8, 9]).sum())
    with pytest.raises(DataError, match="no class 'x'"):
        load_domain(DomainSpec(name="uci-digits", classes=["1", "x"]))
