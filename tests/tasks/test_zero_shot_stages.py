"""The zero-shot road through the stages on a tiny synthetic world (feature vectors that carry their
class's attributes): prepare records the table, select picks eszsl and says why, adapt fits it on
the seen classes and registers it, evaluate reports unseen accuracy above chance and GZSL; without
a table a new task with no labels is still refused, with the way out in the message."""

import json
import sys
from pathlib import Path

import pytest

from tasks import adapt, evaluate, prepare, pretrain, select, similarity, validate
from tasks.paths import (
    ADAPTED_MODEL,
    BASELINE_MODELS,
    EVALUATION,
    MANIFEST,
    METRICS,
    PREPARED_SOURCE,
    PREPARED_TARGET,
    SELECTION,
    SOURCE_MODEL,
)
from transferlab.config import parse_params
from transferlab.data import register_dataset
from transferlab.errors import DataError
from transferlab.models import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transferlab"))
from zero_shot_domains import CLASSES, SEEN, TABLE_CSV, UNSEEN, attribute_domain

register_dataset("zsl-world-a", lambda path, split: attribute_domain("zsl-world-a", 480, 1), "test: zero-shot world",
                 needs_path=False)
register_dataset("zsl-world-b", lambda path, split: attribute_domain("zsl-world-b", 400, 2), "test: zero-shot world",
                 needs_path=False)


def _params(**data):
    return parse_params({
        "data": {"source": {"name": "zsl-world-a", "classes": list(SEEN)}, "target": {"name": "zsl-world-b"},
                 "target_labels_per_class": 0, "attributes": "attributes.csv", **data},
        "model": {"arch": "mlp", "hidden": 32},
        "pretrain": {"epochs": 5, "batch_size": 32, "lr": 0.002},
        "similarity": {"permutations": 20, "max_samples": 100, "plots": False},
        "evaluate": {"bootstrap": 100},
    })


@pytest.fixture(autouse=True)
def _local_mlflow(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_the_zero_shot_road_runs_every_stage(tmp_path):
    (tmp_path / "attributes.csv").write_text(TABLE_CSV)
    params = _params()
    assert prepare.run(params, tmp_path)["road"] == "task-transfer"
    manifest = json.loads((tmp_path / PREPARED_TARGET / MANIFEST).read_text())
    assert manifest["attributes"]["source"] == "attributes.csv" and set(manifest["attributes"]["rows"]) == set(CLASSES)
    source_rows = json.loads((tmp_path / PREPARED_SOURCE / MANIFEST).read_text())["attributes"]["rows"]
    assert list(source_rows) == list(SEEN)  # attribute-supervised pretraining can read the seen rows only
    validate.run(params, tmp_path)
    pretrain.run(params, tmp_path)
    assert load_model(tmp_path / SOURCE_MODEL).spec.attribute_head == 4  # pretrain.attribute_weight > 0
    similarity.run(params, tmp_path)
    assert select.run(params, tmp_path)["method"] == "eszsl"
    selection = json.loads((tmp_path / SELECTION).read_text())
    assert any("zero-shot" in r and "c6, c7" in r for r in selection["reasons"])
    assert selection["evidence"]["zero_shot"] and selection["evidence"]["unseen_classes"] == list(UNSEEN)
    assert adapt.run(params, tmp_path)["method"] == "eszsl"
    assert load_model(tmp_path / ADAPTED_MODEL).classes == CLASSES  # safetensors + JSON, like every model
    assert json.loads((tmp_path / BASELINE_MODELS / MANIFEST).read_text())["baselines"] == ["dap"]
    evaluate.run(params, tmp_path)
    report = json.loads((tmp_path / EVALUATION).read_text())
    z = report["zero_shot"]
    assert z["chance"] == 0.5 and z["unseen_classes"] == list(UNSEEN) and z["seen_classes"] == list(SEEN)
    assert z["models"]["eszsl"]["unseen_accuracy"] > 0.8 > z["chance"]
    assert z["models"]["dap"]["unseen_accuracy"] > 0.8
    assert report["unseen_accuracy"] == z["models"]["eszsl"]["unseen_accuracy"]
    assert 0 <= report["harmonic_mean"] <= 1 and report["gzsl_seen_accuracy"] is not None
    assert json.loads((tmp_path / METRICS).read_text())["unseen_accuracy"] == report["unseen_accuracy"]
    page = (tmp_path / "reports" / "evaluation" / "evaluation.md").read_text()
    assert "Zero-shot through the attribute table attributes.csv: eszsl reaches" in page and "chance 50.0 %" in page


def test_a_new_task_without_labels_or_table_is_refused_with_the_way_out(tmp_path):
    with pytest.raises(DataError, match=r"set it to 1 or more, or give a class–attribute table \(data.attributes\)"):
        prepare.run(_params(attributes=None), tmp_path)


def test_a_table_missing_a_target_class_is_refused(tmp_path):
    (tmp_path / "attributes.csv").write_text("\n".join(TABLE_CSV.splitlines()[:-1]) + "\n")  # no row for c7
    with pytest.raises(DataError, match="has no row for class 'c7'"):
        prepare.run(_params(), tmp_path)


def test_evaluate_reports_zero_shot_scores_only_on_the_zero_shot_road():
    import numpy as np

    from transferlab.data.types import Domain

    manifest = {"road": "task-transfer", "attributes": {"source": "t", "attributes": ["a"], "rows": {}},
                "label_spaces": {"new_classes": ["u0"], "shared_classes": ["s0"]}}
    test = Domain("t", np.zeros((2, 1), dtype=np.float32), np.array([0, 1]), ("s0", "u0"))
    probs = {"eszsl": [np.array([[0.9, 0.1], [0.2, 0.8]])]}
    assert evaluate._zero_shot(manifest, 0, probs, test, "eszsl")["models"]["eszsl"]["harmonic_mean"] == pytest.approx(1.0)
    assert evaluate._zero_shot(manifest, 2, probs, test, "eszsl") is None  # labelled target classes: not zero-shot
