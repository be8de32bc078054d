"""Several candidate sources end to end (`dvc repro` in a temporary repo, tiny data): every candidate
is prepared and gets a model, similarity ranks them, select picks one and says why, adapt and evaluate
run from the chosen one."""

from __future__ import annotations

import copy
import json

import pytest

from tests.e2e.project import BIN, TINY, make_project, set_param, sh

pytestmark = pytest.mark.e2e


def _json(path, name):
    return json.loads((path / name).read_text())


def test_two_candidate_sources_are_ranked_and_the_first_is_adapted_from(tmp_path):
    params = copy.deepcopy(TINY)
    params["data"]["source"] = None
    params["data"]["sources"] = [
        {"name": "mnist5k", "max_samples": 400, "shifts": [{"name": "invert", "severity": 1.0}]},
        {"name": "mnist5k", "max_samples": 400},
    ]
    path = make_project(tmp_path / "p", params)
    sh([str(BIN / "dvc"), "repro"], path)
    assert "up to date" in sh([str(BIN / "dvc"), "status"], path).stdout

    source = _json(path, "data/prepared/source/manifest.json")
    assert source["candidates"] == ["mnist5k+invert(1)", "mnist5k"]
    for i in (0, 1):
        assert (path / f"data/prepared/source/candidates/{i}/train.npz").exists()
        assert (path / f"models/source/candidates/{i}/model.safetensors").exists()
    assert set(_json(path, "reports/validation.json")["domains"]) == {
        "source mnist5k+invert(1)", "source mnist5k", "target"}

    ranking = _json(path, "reports/similarity/source_ranking.json")
    assert ranking == _json(path, "reports/similarity.json")["source_ranking"]
    assert ranking["rule"] == "error-bound"  # no target labels
    # uci-digits are light strokes on dark, as mnist5k: the inverted copy is the far one.
    assert [r["name"] for r in ranking["ranking"]] == ["mnist5k", "mnist5k+invert(1)"]
    assert all(r["reason"].startswith(f"{r['name']}: rank {r['rank']} of 2") for r in ranking["ranking"])

    selection = _json(path, "reports/selection.json")
    assert selection["source"]["name"] == "mnist5k" and selection["source"]["index"] == 1
    assert selection["reasons"][0].startswith("Source: 'mnist5k' is ranked first of 2 candidates")
    assert _json(path, "models/adapted/manifest.json")["source"]["name"] == "mnist5k"
    evaluation = _json(path, "reports/evaluation.json")
    assert evaluation["source_only_accuracy"] is not None

    # multi-source: adapt from both candidates at once; only select, adapt and evaluate run again
    set_param(path, "select.force_method", "multi-source")
    sh([str(BIN / "dvc"), "repro"], path)
    assert _json(path, "reports/selection.json")["method"] == "multi-source"
    adapted = _json(path, "models/adapted/manifest.json")
    assert adapted["method"] == "multi-source" and adapted["source"]["name"] == "mnist5k"
    mixture = {m["name"]: m["weight"] for m in adapted["source_mixture"]}
    assert set(mixture) == {"mnist5k", "mnist5k+invert(1)"} and sum(mixture.values()) == pytest.approx(1.0)
    assert mixture["mnist5k"] > mixture["mnist5k+invert(1)"]  # the plain source sits nearer the target
    assert _json(path, "reports/evaluation.json")["adapted_accuracy"] is not None


def _target_like_model(folder):
    """A LeNet (the TINY project's size) trained briefly on UCI digits, the TINY target's own domain:
    a trained model someone brings, without its data."""
    from transferlab.data import DomainSpec, harmonise, load_domain
    from transferlab.models import ModelSpec, build_model, save_model
    from transferlab.training import TrainSettings, train_classifier

    digits = harmonise(load_domain(DomainSpec(name="uci-digits")), 16, 1)
    train, val = digits.subset(range(0, 1500)), digits.subset(range(1500, len(digits)))
    spec = ModelSpec(arch="lenet", image_size=16, hidden=64, num_classes=10, classes=list(digits.classes))
    settings = TrainSettings(epochs=3, batch_size=64, lr=2e-3, patience=3, seed=0)
    save_model(train_classifier(build_model(spec, seed=0), train, val, settings).model, folder)


def test_a_trained_model_among_the_sources_is_imported_ranked_and_adapted_from_without_data(tmp_path):
    params = copy.deepcopy(TINY)
    params["data"]["source"] = None
    params["data"]["sources"] = [{"name": "mnist5k", "max_samples": 400},
                                 {"model": {"kind": "folder", "path": "models/pretrained/uci-model"}, "name": "uci model"}]
    path = make_project(tmp_path / "p", params)
    _target_like_model(path / "models/pretrained/uci-model")
    sh([str(BIN / "dvc"), "repro"], path)

    source = _json(path, "data/prepared/source/manifest.json")
    assert source["candidates"] == ["mnist5k", "uci model"] and source["models"] == [1]
    assert not (path / "data/prepared/source/candidates/1/train.npz").exists()
    imported = _json(path, "models/source/candidates/1/manifest.json")
    assert imported["imported"]["kind"] == "folder" and imported["source_val_accuracy"] is None
    assert set(_json(path, "reports/validation.json")["domains"]) == {"source mnist5k", "target"}

    ranking = _json(path, "reports/similarity/source_ranking.json")
    assert ranking["rule"] == "information-maximisation"  # no target labels, and a candidate without data
    assert [r["name"] for r in ranking["ranking"]] == ["uci model", "mnist5k"]
    assert ranking["ranking"][0]["reason"].startswith("uci model: rank 1 of 2: a model without data")

    selection = _json(path, "reports/selection.json")
    assert selection["source"]["name"] == "uci model"
    report = _json(path, "reports/similarity.json")
    assert report["source_data"] is False  # the report is the chosen model's: source-free
    adapted = _json(path, "models/adapted/manifest.json")
    assert adapted["source"]["name"] == "uci model" and adapted["method"] == selection["method"]
    from transferlab.methods import get_method

    assert not get_method(selection["method"]).uses_source  # adapted without source data
    assert _json(path, "reports/evaluation.json")["adapted_accuracy"] is not None
