"""A tiny, easy zero-shot world for the tests: inputs carry their class's attributes (plus noise and
nuisance dimensions), so features learnt on the seen classes keep the attributes the unseen ones use."""

from __future__ import annotations

import numpy as np

from transferlab.data.attributes import parse_attribute_table
from transferlab.data.types import Domain

CLASSES = tuple(f"c{i}" for i in range(8))
SEEN, UNSEEN = CLASSES[:6], CLASSES[6:]
# Every attribute takes both values among the seen classes, and with any two seen classes held out
# (ESZSL's pseudo-unseen folds) the other four still tell those two apart; the unseen rows are new.
ROWS = {"c0": "0001", "c1": "0010", "c2": "0011", "c3": "0100", "c4": "0101", "c5": "1000", "c6": "0110",
        "c7": "1001"}
TABLE_CSV = "class,a,b,c,d\n" + "".join(f"{c},{','.join(r)}\n" for c, r in ROWS.items())


def table():
    return parse_attribute_table(TABLE_CSV, "test-table")


def attribute_domain(name: str, n: int, seed: int, classes=CLASSES, nuisance: int = 2) -> Domain:
    """``n`` samples spread over ``classes``: x = 2.5 (2 s_c − 1) + N(0, 0.5²) on the 4 attribute
    dimensions, N(0, 1) on ``nuisance`` more."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(classes)
    sig = np.array([[float(v) for v in ROWS[c]] for c in classes])
    x = np.concatenate([2.5 * (2 * sig[y] - 1) + rng.normal(0, 0.5, (n, 4)), rng.normal(0, 1, (n, nuisance))], 1)
    return Domain(name, x.astype(np.float32), y.astype(np.int64), tuple(classes))
