"""The validate stage on hand-made prepared data: a clean pair passes, each critical problem stops
the pipeline with a message naming the expectation and the domain."""

import json

import numpy as np
import pytest

from tasks import validate
from tasks.io import write_manifest
from tasks.paths import PREPARED_SOURCE, PREPARED_TARGET, PREPARED_TEST, VALIDATION
from transferlab.config import PipelineParams
from transferlab.data import Domain, save_domain
from transferlab.errors import DataError

CLASSES = ("0", "1", "2")


def _domain(seed, n=30, offset=0.0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, 1, 6, 6)).astype(np.float32)
    return Domain("d", np.clip(x + offset, 0, 1), np.arange(n) % 3, CLASSES)


def _write(root, splits: dict):
    for folder, parts in ((PREPARED_SOURCE, ("train", "val")), (PREPARED_TARGET, ("labelled", "unlabelled")),
                          (PREPARED_TEST, ("test",))):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for part in parts:
            save_domain(splits[part], root / folder / f"{part}.npz")
        write_manifest(root / folder, "t", [], domain=f"dom-{folder.name}", classes=list(CLASSES),
                       labels_per_class=0)


@pytest.fixture
def clean():
    return {"train": _domain(0), "val": _domain(1), "labelled": _domain(2, 3), "unlabelled": _domain(3),
            "test": _domain(4)}


def test_clean_data_passes_and_writes_the_report(tmp_path, clean, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _write(tmp_path, clean)
    summary = validate.run(PipelineParams(), tmp_path)
    report = json.loads((tmp_path / VALIDATION).read_text())
    assert summary["success"] and report["success"]
    assert {"source", "target"} == set(report["domains"])
    assert all(r["success"] for d in report["domains"].values() for r in d["expectations"])


@pytest.mark.parametrize("corrupt, expectation, domain", [
    (lambda s: s["unlabelled"].x.__setitem__((0, 0, 0, 0), np.nan), "expect_column_values_to_be_between", "target"),
    (lambda s: s["val"].y.__setitem__(0, 7), "expect_column_values_to_be_in_set", "source"),
    (lambda s: s["train"].x.__setitem__((1, 0, 0, 0), 1.5), "expect_column_values_to_be_between", "source"),
    (lambda s: s.__setitem__("test", Domain("d", s["unlabelled"].x[:5].copy(), s["unlabelled"].y[:5].copy(), CLASSES)),
     "expect_column_values_to_be_unique", "target"),
])
def test_critical_problems_stop_with_a_named_expectation(tmp_path, clean, corrupt, expectation, domain):
    corrupt(clean)
    _write(tmp_path, clean)
    with pytest.raises(DataError) as err:
        validate.run(PipelineParams(), tmp_path)
    message = str(err.value)
    assert expectation in message and f"the {domain} domain" in message
    assert not (tmp_path / VALIDATION).exists()
    assert (tmp_path / "reports" / "validation.failed.json").exists()
    assert not (tmp_path / "mlflow.db").exists()
