"""Class–attribute tables: what lets a model name classes it never saw (zero-shot transfer).

A table is a CSV, one row per class: a header ``class,attr1,attr2,...`` then ``name,v1,v2,...``
with binary (0/1) or continuous values. Each class c gets its *signature* s_c, the row of its
values; zero-shot methods (:mod:`transferlab.methods.dap`, :mod:`transferlab.methods.eszsl`) learn
from the seen classes how inputs relate to attributes, then predict an unseen class through its
signature alone. Tables shipped with the package are named ``builtin:NAME``
(``transferlab/data/attribute_tables/NAME.csv``, documented in that folder's README).

What is refused and what is only warned about:

- errors (the table cannot be used as written): an empty file or header, no attribute column, a
  missing or duplicate class name, a duplicate attribute name, a row of the wrong length, a value
  that is not a finite number, and (:meth:`ClassAttributes.for_classes`) a class in use that the
  table lacks, or two classes in use with identical rows: no attribute could tell them apart, so
  every prediction between them would be a coin flip;
- warnings: an attribute constant over the classes in use carries no information (the methods
  cannot learn it either way); it is kept, and named.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from transferlab.errors import DataError

BUILTIN_PREFIX = "builtin:"
TABLES_PACKAGE = "transferlab.data"
TABLES_FOLDER = "attribute_tables"


@dataclass(frozen=True)
class ClassAttributes:
    """A class–attribute table: ``values[i, m]`` is attribute ``attributes[m]`` of ``classes[i]``."""

    source: str
    classes: tuple[str, ...]
    attributes: tuple[str, ...]
    values: np.ndarray

    @property
    def binary(self) -> bool:
        return bool(np.isin(self.values, (0.0, 1.0)).all())

    def signatures(self, classes) -> np.ndarray:
        """The rows of ``classes``, in that order, shape (len(classes), n_attributes)."""
        index = {c: i for i, c in enumerate(self.classes)}
        missing = [str(c) for c in classes if str(c) not in index]
        if missing:
            raise DataError(f"the attribute table {self.source} has no row for class "
                            f"{', '.join(repr(m) for m in missing)} (its classes: {', '.join(self.classes)})")
        return self.values[[index[str(c)] for c in classes]]

    def for_classes(self, classes) -> tuple[ClassAttributes, list[str]]:
        """The table restricted to ``classes`` (in that order) and the warnings it raises; an error
        when a class is missing or two of them share a row."""
        classes = tuple(str(c) for c in classes)
        values = self.signatures(classes)
        seen: dict[tuple, str] = {}
        for name, row in zip(classes, map(tuple, values)):
            if row in seen:
                raise DataError(f"classes '{seen[row]}' and '{name}' have identical rows in the attribute table "
                                f"{self.source}: no attribute tells them apart; add an attribute that does")
            seen[row] = name
        constant = [a for a, col in zip(self.attributes, values.T) if np.ptp(col) == 0]
        warnings = [f"attribute '{a}' of {self.source} is constant over the classes in use "
                    "and carries no information" for a in constant]
        return ClassAttributes(self.source, classes, self.attributes, values), warnings

    def to_dict(self) -> dict:
        return {"source": self.source, "attributes": list(self.attributes),
                "rows": {c: [float(v) for v in row] for c, row in zip(self.classes, self.values)}}

    @classmethod
    def from_dict(cls, raw: dict) -> ClassAttributes:
        rows = raw["rows"]
        return cls(raw["source"], tuple(rows), tuple(raw["attributes"]),
                   np.array([rows[c] for c in rows], dtype=np.float64).reshape(len(rows), len(raw["attributes"])))


def binarise(table_rows: np.ndarray) -> np.ndarray:
    """0/1 rows as they are; other values thresholded at each attribute's mean over the given rows
    (Lampert et al. threshold their continuous AwA matrix the same way, at its mean)."""
    if np.isin(table_rows, (0.0, 1.0)).all():
        return table_rows.astype(np.float64)
    return (table_rows > table_rows.mean(0, keepdims=True)).astype(np.float64)


def seen_attribute_targets(table: ClassAttributes, seen_classes) -> np.ndarray:
    """The binary attribute targets of attribute-supervised source training: the rows of
    ``seen_classes`` only, in that order, binarised over those rows alone, so that nothing about an
    unseen class (its row, or its weight in a threshold) reaches the source model."""
    return binarise(table.signatures(tuple(str(c) for c in seen_classes)))


def builtin_tables() -> list[str]:
    folder = resources.files(TABLES_PACKAGE) / TABLES_FOLDER
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".csv"))


def read_attribute_table(where: str, root: Path = Path(".")) -> ClassAttributes:
    """The table named ``builtin:NAME`` or at the CSV path ``where`` (relative to ``root``)."""
    if where.startswith(BUILTIN_PREFIX):
        name = where[len(BUILTIN_PREFIX):]
        if name not in builtin_tables():
            raise DataError(f"data.attributes: no built-in attribute table '{name}' "
                            f"(built-in: {', '.join(BUILTIN_PREFIX + t for t in builtin_tables())})")
        text = (resources.files(TABLES_PACKAGE) / TABLES_FOLDER / f"{name}.csv").read_text(encoding="utf-8")
        return parse_attribute_table(text, where)
    path = Path(where) if Path(where).is_absolute() else Path(root) / where
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"data.attributes: the attribute table {where} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"data.attributes: cannot read the attribute table {where} ({type(exc).__name__})") from None
    return parse_attribute_table(text, where)


def parse_attribute_table(text: str, source: str) -> ClassAttributes:
    """Parse the CSV text of a table (``source`` names it in errors)."""
    rows = [r for r in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in r)]
    if not rows:
        raise DataError(f"the attribute table {source} is empty")
    header = [h.strip() for h in rows[0]]
    attributes = header[1:]
    if not attributes:
        raise DataError(f"the attribute table {source} has no attribute column (header: class,attr1,attr2,...)")
    if any(not a for a in attributes) or len(set(attributes)) != len(attributes):
        raise DataError(f"the attribute table {source} has an empty or duplicate attribute name in its header")
    if len(rows) < 2:
        raise DataError(f"the attribute table {source} has a header but no class rows")
    classes, values = [], []
    for line, row in enumerate(rows[1:], start=2):
        name = row[0].strip()
        if not name:
            raise DataError(f"the attribute table {source}, row {line}: the class name is empty")
        if name in classes:
            raise DataError(f"the attribute table {source} has two rows for class '{name}' (row {line})")
        if len(row) != len(header):
            raise DataError(f"the attribute table {source}, row {line} (class '{name}'): {len(row) - 1} values "
                            f"for {len(attributes)} attributes")
        values.append([_number(cell, source, line, name, a) for cell, a in zip(row[1:], attributes)])
        classes.append(name)
    return ClassAttributes(source, tuple(classes), tuple(attributes), np.array(values, dtype=np.float64))


def _number(cell: str, source: str, line: int, name: str, attribute: str) -> float:
    try:
        value = float(cell.strip())
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DataError(f"the attribute table {source}, row {line} (class '{name}'), attribute '{attribute}': "
                        f"{cell.strip()!r} is not a finite number")
    return value
