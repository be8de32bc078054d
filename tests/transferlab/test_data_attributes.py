"""The class–attribute table reader: the shipped digits table, and one clear line for each bad table."""

import numpy as np
import pytest

from transferlab.data.attributes import (
    ClassAttributes,
    builtin_tables,
    parse_attribute_table,
    read_attribute_table,
)
from transferlab.errors import DataError

DIGITS = [str(i) for i in range(10)]


def test_the_builtin_digits_table_has_distinct_rows_and_attributes_learnable_from_0_to_6():
    table = read_attribute_table("builtin:digits")
    assert "digits" in builtin_tables() and table.binary and table.classes == tuple(DIGITS)
    used, warnings = table.for_classes(DIGITS)
    assert warnings == [] and len({tuple(r) for r in used.values}) == 10
    seen = table.signatures(DIGITS[:7])
    assert (np.ptp(seen, axis=0) > 0).all()  # every attribute takes both values among the seen digits


def test_a_csv_path_reads_binary_or_continuous_values(tmp_path):
    (tmp_path / "t.csv").write_text("class, striped ,size\nzebra,1,0.5\nhorse,0,0.7\n\n")
    table = read_attribute_table("t.csv", tmp_path)
    assert table.attributes == ("striped", "size") and not table.binary
    np.testing.assert_array_equal(table.signatures(["horse", "zebra"]), [[0, 0.7], [1, 0.5]])
    assert ClassAttributes.from_dict(table.to_dict()).to_dict() == table.to_dict()


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("class\na\nb\n", "no attribute column"),
    ("class,x,x\na,1,0\n", "empty or duplicate attribute name"),
    ("class,x\n", "no class rows"),
    ("class,x\na,1\na,0\n", "two rows for class 'a' (row 3)"),
    ("class,x,y\na,1\n", "row 2 (class 'a'): 1 values for 2 attributes"),
    ("class,x\na,yes\n", "row 2 (class 'a'), attribute 'x': 'yes' is not a finite number"),
    ("class,x\na,nan\n", "'nan' is not a finite number"),
    ("class,x\n,1\n", "row 2: the class name is empty"),
])
def test_bad_tables_fail_with_one_line(text, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        parse_attribute_table(text, "t.csv")
    assert "\n" not in str(err.value) and "t.csv" in str(err.value)


def test_missing_classes_and_identical_rows_are_errors_constant_columns_warnings():
    table = parse_attribute_table("class,x,y,k\na,1,0,1\nb,0,1,1\nc,1,0,1\nd,1,1,1\n", "t.csv")
    with pytest.raises(DataError, match="has no row for class 'e'"):
        table.for_classes(["a", "e"])
    with pytest.raises(DataError, match="classes 'a' and 'c' have identical rows"):
        table.for_classes(["a", "b", "c"])
    used, warnings = table.for_classes(["a", "b", "d"])
    assert used.classes == ("a", "b", "d") and warnings == [
        "attribute 'k' of t.csv is constant over the classes in use and carries no information"]


def test_unknown_builtin_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="no built-in attribute table 'animals'.*builtin:digits"):
        read_attribute_table("builtin:animals")
    with pytest.raises(DataError, match="the attribute table nope.csv does not exist"):
        read_attribute_table("nope.csv", tmp_path)
