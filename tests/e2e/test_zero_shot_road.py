"""The zero-shot road end to end (`dvc repro` in a temporary repo, tiny data): digits 0-6 as the source,
all ten digits as the target, no target label, the shipped digits attribute table."""

from __future__ import annotations

import copy
import json

import pytest

from tests.e2e.project import BIN, TINY, make_project, sh

pytestmark = pytest.mark.e2e
DIGITS = [str(i) for i in range(10)]


def test_zero_shot_through_the_digits_table(tmp_path):
    params = copy.deepcopy(TINY)
    params["data"]["source"] = {**params["data"]["source"], "classes": DIGITS[:7]}
    params["data"].update(target_labels_per_class=0, attributes="builtin:digits")
    path = make_project(tmp_path / "p", params)
    sh([str(BIN / "dvc"), "repro"], path)
    assert "up to date" in sh([str(BIN / "dvc"), "status"], path).stdout
    selection = json.loads((path / "reports/selection.json").read_text())
    assert selection["method"] == "eszsl" and selection["evidence"]["unseen_classes"] == DIGITS[7:]
    evaluation = json.loads((path / "reports/evaluation.json").read_text())
    z = evaluation["zero_shot"]
    assert z["seen_classes"] == DIGITS[:7] and z["chance"] == pytest.approx(1 / 3)
    assert set(z["models"]) == {"eszsl", "dap"}
    assert all(m["harmonic_mean"] is not None for m in z["models"].values())  # the test holds seen digits too
    metrics = json.loads((path / "reports/metrics.json").read_text())
    assert {"unseen_accuracy", "harmonic_mean", "gzsl_seen_accuracy", "gzsl_unseen_accuracy"} <= set(metrics)
