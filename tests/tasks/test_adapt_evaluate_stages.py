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
from tasks.data_files import target_test
from tasks.evaluate import champion_decision
from tasks.io import write_json
from tasks.paths import ADAPTED_MODEL, EVALUATION, PREPARED_TEST, SELECTION, SIMILARITY
from transferlab.config import parse_params
from transferlab.data import save_domain
from transferlab.evaluation.promotion import promotion_split
from transferlab.models import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blob_project import write_blob_project  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transferlab"))
from synthetic_domains import blobs  # noqa: E402

CANDIDATES = [{"method": m, "score": s, "eligible": True, "why": "test"}
              for m, s in (("finetune", 1.0), ("source-only", 0.1), ("target-only", 0.1), ("linear-probe", 0.5))]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    write_blob_project(tmp_path, source_epochs=4)
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
    tags = {"promotion_accuracy": str(accuracy), "promotion_split_sha256": split} if accuracy is not None else {}
    return SimpleNamespace(version=str(version), tags=tags)


def test_champion_decision_reads_the_registry_and_rescores_only_when_it_must():
    """The registry side of the rule (the rule itself: tests/transferlab/test_evaluation_promotion.py)."""
    never = lambda v: pytest.fail("must not re-score")  # noqa: E731
    positive = "positive-transfer"
    first = champion_decision(FakeRegistry(), "m", 1, positive, 0.8, "h", never)
    assert first["moved"] and first["version"] == "1" and "no champion yet" in first["reason"]
    # The champion's score recorded on this same hold-out is used as it is...
    stays = champion_decision(FakeRegistry(_version(1, 0.9)), "m", 2, positive, 0.8, "h", never)
    assert not stays["moved"] and stays["version"] == "1" and "recorded on this same hold-out" in stays["reason"]
    # ...on another hold-out the champion is scored again,
    rescored = champion_decision(FakeRegistry(_version(1, 0.9, split="other")), "m", 2, positive, 0.8, "h",
                                 lambda v: 0.75)
    assert rescored["moved"] and rescored["version"] == "2" and "re-scored on this hold-out" in rescored["reason"]
    # but not when this version cannot win anyway (no significant gain, or registration off).
    held = champion_decision(FakeRegistry(_version(1, 0.9, split="other")), "m", 2, "no-significant-difference",
                             0.99, "h", never)
    assert not held["moved"] and held["version"] == "1" and "no-significant-difference" in held["reason"]
    off = champion_decision(FakeRegistry(), "m", None, positive, 0.8, "h", never)
    assert not off["moved"] and "registration is off" in off["reason"]
    # A champion of another task (other classes) is no rival; one of the same classes still is.
    other_task = _version(1, 0.99)
    other_task.tags["classes"] = json.dumps(["5", "6"])
    new_task = champion_decision(FakeRegistry(other_task), "m", 2, positive, 0.8, "h", never, classes=["0", "1"])
    assert new_task["moved"] and "another task" in new_task["reason"]
    assert not champion_decision(FakeRegistry(other_task), "m", 2, positive, 0.8, "h", never,
                                 classes=["5", "6"])["moved"]


def _assert_interfaces_agree(project, client, evaluation_run_result):
    """The alias, the version's tags, the evaluate run's tags, the report page, the terminal summary
    and the Prefect artifact all carry the one decision and its reason."""
    from flows.pipeline import _summary_markdown
    from flows.summary import summary_lines
    from transferlab.evaluation.report import render_summary_markdown

    evaluation = json.loads((project / EVALUATION).read_text())
    champion, reason = evaluation["champion"], evaluation["champion_reason"]
    assert champion == evaluation_run_result["champion"] and champion["reason"] == reason
    name, version = evaluation["registered_model"], str(evaluation["adapted_version"])
    alias = str(client.get_model_version_by_alias(name, "champion").version) if champion["version"] else None
    assert alias == champion["version"] == evaluation["champion_version"]
    if champion["moved"]:
        assert alias == version
    decision = "promoted" if champion["moved"] else "not promoted"
    tags = client.get_model_version(name, version).tags
    run_tags = client.get_run(evaluation["mlflow_run_id"]).data.tags
    for where in (tags, run_tags):
        assert where["champion_decision"] == decision and where["champion_reason"] == reason
        assert where["verdict"] == evaluation["verdict"]
        assert where["promotion_verdict"] == evaluation["promotion"]["verdict"]
    assert float(tags["promotion_accuracy"]) == pytest.approx(evaluation["promotion"]["accuracy"])
    # Promoted only on a significant gain on the promotion hold-out.
    if champion["moved"]:
        assert evaluation["promotion"]["verdict"] == "positive-transfer"
    selection = json.loads((project / SELECTION).read_text())
    block = render_summary_markdown(evaluation, selection, evaluation["links"])
    assert reason in block and evaluation["gain"]["baseline"] in block and evaluation["links"]
    page = (project / "reports" / "evaluation" / "evaluation.md").read_text()
    assert block.strip() in page
    assert block.strip() in _summary_markdown(project)
    printed = "\n".join(summary_lines(project))
    assert reason in printed and f"verdict                : {evaluation['verdict']}" in printed


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
    _assert_interfaces_agree(project, client, first)
    v1 = client.get_model_version_by_alias("transferlab-adapted", "champion").version
    report = json.loads((project / EVALUATION).read_text())
    assert report["test"]["promotion_n"] == 90 and report["test"]["report_n"] == 210
    assert report["models"]["target-only"]["accuracy"]["n"] == 1 and "held out for promotion" in \
        (project / "reports" / "evaluation" / "evaluation.md").read_text()
    # The same model again: a new version that is not better, so the alias stays on v1.
    adapt.run(params, project)
    second = evaluate.run(params, project)
    assert not second["champion"]["moved"] and "as good or better" in second["champion"]["reason"]
    assert "recorded on this same hold-out" in second["champion"]["reason"]
    assert client.get_model_version_by_alias("transferlab-adapted", "champion").version == v1
    _assert_interfaces_agree(project, client, second)


def test_a_new_test_split_rescores_the_champion_from_its_saved_weights(project):
    """The champion was loaded back through MLflow's pt2 model, which refuses eval(): every run on a new
    test split said it 'could not be scored'. It is re-scored from transferlab's own weights."""
    write_json(project / SELECTION, {"method": "target-only", "candidates": CANDIDATES, "reasons": ["test"],
                                     "method_params": {}})
    params = parse_params({"data": {"target_labels_per_class": 10},
                           "adapt": {"train": {"epochs": 10, "batch_size": 32}}, "evaluate": {"bootstrap": 200}})
    adapt.run(params, project)
    assert evaluate.run(params, project)["champion"]["moved"]
    client = MlflowClient()
    v1 = str(client.get_model_version_by_alias("transferlab-adapted", "champion").version)
    # Another test split (as another seed or new data gives), and the same model registered again.
    save_domain(blobs("target-test", 300, seed=21, offset=3.0), project / PREPARED_TEST / "test.npz")
    adapt.run(params, project)
    second = evaluate.run(params, project)
    assert "could not be scored" not in second["champion"]["reason"]
    assert "re-scored on this hold-out" in second["champion"]["reason"], second["champion"]
    # Same weights, same hold-out: the re-scored champion ties with the new version, so it stays.
    assert not second["champion"]["moved"] and second["champion"]["version"] == v1
    evaluation = json.loads((project / EVALUATION).read_text())
    test = target_test(project)
    held_out = test.subset(promotion_split(test.y, 0.3, evaluation["test"]["sha256"]).promotion)
    rescored = evaluate._score_registered("transferlab-adapted", held_out)(v1)
    assert rescored == pytest.approx(evaluation["promotion"]["accuracy"])
    _assert_interfaces_agree(project, client, second)


def test_an_ensemble_chosen_by_select_is_trained_saved_registered_and_evaluated(project):
    params = parse_params({"data": {"target_labels_per_class": 10},
                           "adapt": {"train": {"epochs": 2, "batch_size": 32},
                                     "methods": {"dann": {"trade_off": 0.5, "checkpoint": "information-maximisation"}}},
                           "evaluate": {"bootstrap": 100, "audit": True}})
    chosen = {"members": [{"method": "dann", "settings": {"trade_off": 0.3}}, {"method": "finetune", "settings": {}}]}
    method_params = select.method_params(params, "ensemble", chosen)
    # params.yaml's entry of each member, overridden by what the trial chose for it.
    assert method_params["members"][0]["settings"] == {"trade_off": 0.3, "checkpoint": "information-maximisation"}
    candidates = [*CANDIDATES, {"method": "ensemble", "score": None, "eligible": True, "why": "chosen"}]
    write_json(project / SELECTION, {"method": "ensemble", "settings": chosen, "candidates": candidates,
                                     "reasons": ["test"], "method_params": method_params})
    assert adapt.run(params, project)["method"] == "ensemble"
    saved = json.loads((project / ADAPTED_MODEL / "model.json").read_text())
    assert [m["arch"] for m in saved["members"]] == ["mlp", "mlp"]
    evaluate.run(params, project)
    report = json.loads((project / EVALUATION).read_text())
    assert report["chosen"] == "ensemble" and "ensemble" in report["audit"]["candidates"]
    version = MlflowClient().get_model_version("transferlab-adapted", "1")
    assert version.tags["method"] == "ensemble"
    # The registered weights rebuild the ensemble (what champion re-scoring and imports read).
    test = target_test(project)
    saved_acc = (evaluate.predict_proba(load_model(project / ADAPTED_MODEL), test).argmax(1) == test.y).mean()
    assert evaluate._score_registered("transferlab-adapted", test)("1") == pytest.approx(saved_acc, abs=0)
    page = (project / "reports" / "evaluation" / "evaluation.md").read_text()
    assert "the mean of dann(trade_off=0.3) + finetune" in page


def test_a_forced_ensembles_members_take_their_params_as_a_chosen_ones_do():
    members = [{"method": "dann", "settings": {"trade_off": 0.3}}, {"method": "mcc"}]
    params = parse_params({"select": {"force_method": "ensemble"},
                           "adapt": {"methods": {"ensemble": {"members": members},
                                                 "mcc": {"checkpoint": "information-maximisation"}}}})
    forced = select.method_params(params, "ensemble", {})
    assert forced["members"] == [{"method": "dann", "settings": {"trade_off": 0.3}},
                                 {"method": "mcc", "settings": {"checkpoint": "information-maximisation"}}]
