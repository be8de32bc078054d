"""adapt over several seeds, evaluate's mean ± std and oracle audit, the champion rule, and the
guarantee that select and adapt never read the target test split."""

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient

from tasks import adapt, evaluate, select
from tasks.adapt import seed_dir
from tasks.evaluate import champion_decision
from tasks.io import write_json, write_manifest
from tasks.paths import (ADAPTED_MODEL, EVALUATION, PREPARED_SOURCE, PREPARED_TARGET, PREPARED_TEST, SELECTION,
                         SIMILARITY, SOURCE_MODEL)
from transferlab.config import parse_params
from transferlab.data import save_domain
from transferlab.models import save_model
from transferlab.training import TrainSettings, train_classifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transferlab"))
from synthetic_domains import blob_data, blob_test, mlp  # noqa: E402

CANDIDATES = [{"method": m, "score": s, "eligible": True, "why": "test"}
              for m, s in (("finetune", 1.0), ("source-only", 0.1), ("target-only", 0.1), ("linear-probe", 0.5))]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data = blob_data(offset=3.0, labels_per_class=10, unlabelled=90)
    source = train_classifier(mlp(seed=0), data.source_train, data.source_val,
                              TrainSettings(epochs=4, batch_size=32, seed=0)).model
    for folder, parts in ((PREPARED_SOURCE, {"train": data.source_train, "val": data.source_val}),
                          (PREPARED_TARGET, {"labelled": data.target_labelled, "unlabelled": data.target_unlabelled}),
                          (PREPARED_TEST, {"test": blob_test(offset=3.0)})):
        (tmp_path / folder).mkdir(parents=True)
        for split, domain in parts.items():
            save_domain(domain, tmp_path / folder / f"{split}.npz")
        write_manifest(tmp_path / folder, "t", [], domain="blobs", classes=list(data.source_train.classes),
                       labels_per_class=10)
    save_model(source, tmp_path / SOURCE_MODEL)
    write_json(tmp_path / SIMILARITY, {"mmd": {"mmd2": 0.4, "p_value": 0.001, "normalised": 0.5}, "layers": [],
                                       "a_distance": 1.9, "transferability": None})
    write_json(tmp_path / SELECTION, {"method": "finetune", "candidates": CANDIDATES, "reasons": ["test"],
                                      "method_params": {}})
    return tmp_path


def _params(**evaluate):
    return parse_params({"data": {"target_labels_per_class": 10},
                         "adapt": {"train": {"epochs": 3, "batch_size": 32}, "seeds": [0, 1, 2]},
                         "evaluate": {"bootstrap": 200, **evaluate}})


def test_seeds_give_mean_and_std_and_the_audit_reports_regret(project):
    params = _params(audit=True)
    assert adapt.run(params, project)["seeds"] == [0, 1, 2]
    for seed in (1, 2):
        assert (seed_dir(project / ADAPTED_MODEL, seed) / "model.safetensors").exists()
    evaluate.run(params, project)
    report = json.loads((project / EVALUATION).read_text())
    assert report["seeds"] == [0, 1, 2]
    chosen = report["models"]["finetune"]["accuracy"]
    assert chosen["n"] == 3 and len(chosen["per_seed"]) == 3 and chosen["std"] >= 0
    assert report["models"]["target-only"]["accuracy"]["n"] == 3
    assert report["models"]["source-only"]["accuracy"]["n"] == 1
    audit = report["audit"]
    assert audit["oracle"] and "test labels" in audit["note"]
    assert set(audit["candidates"]) == {"finetune", "source-only", "target-only", "linear-probe"}
    assert audit["candidates_trained"] == ["linear-probe"]
    assert audit["regret"] == pytest.approx(audit["best_accuracy"] - audit["chosen_accuracy"]) and audit["regret"] >= 0
    assert report["selection_regret"] == audit["regret"]
    page = (project / "reports" / "evaluation" / "evaluation.md").read_text()
    assert "oracle" in page.lower() and "±" in page


def test_select_and_adapt_never_read_the_target_test_split(project):
    shutil.rmtree(project / PREPARED_TEST)  # any attempt to read it would now fail loudly
    params = parse_params({"data": {"target_labels_per_class": 10},
                           "select": {"mode": "trial", "candidates": ["source-only", "finetune"], "budget_epochs": 8},
                           "adapt": {"train": {"epochs": 2, "batch_size": 32}}})
    select.run(params, project)
    assert adapt.run(params, project)["method"] == json.loads((project / SELECTION).read_text())["method"]
    with pytest.raises(Exception, match="test"):
        evaluate.run(params, project)


class FakeRegistry:
    def __init__(self, champion=None):
        self.champion = champion

    def get_model_version_by_alias(self, name, alias):
        if self.champion is None:
            raise RuntimeError("alias not found")
        return self.champion


def _version(version, accuracy=None, split="h"):
    tags = {"test_accuracy": str(accuracy), "test_split_sha256": split} if accuracy is not None else {}
    return SimpleNamespace(version=str(version), tags=tags)


def test_champion_moves_only_past_baselines_and_the_current_champion():
    never = lambda v: pytest.fail("must not re-score")  # noqa: E731
    first = champion_decision(FakeRegistry(), "m", 1, 0.8, True, "h", never)
    assert first["moved"] and first["version"] == "1"
    lost = champion_decision(FakeRegistry(), "m", 1, 0.8, False, "h", never)
    assert not lost["moved"] and "baseline" in lost["reason"]
    better = champion_decision(FakeRegistry(_version(1, 0.7)), "m", 2, 0.8, True, "h", never)
    assert better["moved"] and better["version"] == "2"
    stays = champion_decision(FakeRegistry(_version(1, 0.9)), "m", 2, 0.8, True, "h", never)
    assert not stays["moved"] and stays["version"] == "1" and "as good or better" in stays["reason"]
    rescored = champion_decision(FakeRegistry(_version(1, 0.9, split="other")), "m", 2, 0.8, True, "h",
                                 lambda v: 0.75)
    assert rescored["moved"] and rescored["version"] == "2"
    off = champion_decision(FakeRegistry(), "m", None, 0.8, True, "h", never)
    assert not off["moved"] and "registration is off" in off["reason"]
    # A champion of another task (other classes) is no rival; one of the same classes still is.
    other_task = _version(1, 0.99)
    other_task.tags["classes"] = json.dumps(["5", "6"])
    new_task = champion_decision(FakeRegistry(other_task), "m", 2, 0.8, True, "h", never, classes=["0", "1"])
    assert new_task["moved"] and "another task" in new_task["reason"]
    assert not champion_decision(FakeRegistry(other_task), "m", 2, 0.8, True, "h", never, classes=["5", "6"])["moved"]


def test_champion_alias_in_the_registry_moves_then_stays(project):
    # target-only on 10 labels per class is far above the shifted source model here: a clear winner.
    write_json(project / SELECTION, {"method": "target-only", "candidates": CANDIDATES, "reasons": ["test"],
                                     "method_params": {}})
    params = parse_params({"data": {"target_labels_per_class": 10},
                           "adapt": {"train": {"epochs": 10, "batch_size": 32}}, "evaluate": {"bootstrap": 200}})
    adapt.run(params, project)
    first = evaluate.run(params, project)
    client = MlflowClient()
    assert first["champion"]["moved"], first["champion"]
    v1 = client.get_model_version_by_alias("transferlab-adapted", "champion").version
    # The same model again: a new version that is not better, so the alias stays on v1.
    adapt.run(params, project)
    second = evaluate.run(params, project)
    assert not second["champion"]["moved"] and "as good or better" in second["champion"]["reason"]
    assert client.get_model_version_by_alias("transferlab-adapted", "champion").version == v1
