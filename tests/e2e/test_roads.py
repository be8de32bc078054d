"""Each road end to end (`dvc repro` in a temporary repo, tiny data): a new task of disjoint and of
partly shared classes, a model imported from each of the three kinds of source, a source-free run,
and an imported file that is refused with one line and nothing written."""

from __future__ import annotations

import copy
import json
import re
import shutil

import pytest
import torch
import torchvision
from mlflow.tracking import MlflowClient

from tests.e2e.project import BIN, TINY, make_project, set_param, sh

pytestmark = pytest.mark.e2e
DIGITS = [str(i) for i in range(10)]


def _params(**data):
    params = copy.deepcopy(TINY)
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(params["data"].get(key), dict):
            params["data"][key] = {**params["data"][key], **value}
        else:
            params["data"][key] = value
    return params


def _repro(path) -> list[str]:
    out = sh([str(BIN / "dvc"), "repro"], path)
    assert "up to date" in sh([str(BIN / "dvc"), "status"], path).stdout
    return re.findall(r"Running stage '([\w-]+)'", out.stdout + out.stderr)


def _json(path, name):
    return json.loads((path / name).read_text())


def _client(path):
    uri = f"sqlite:///{path / 'mlflow.db'}"  # both explicit: an earlier test may have set another registry
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_a_new_task_of_disjoint_classes(tmp_path):
    path = make_project(tmp_path / "p", _params(source={"classes": DIGITS[:5]}, target={"classes": DIGITS[5:]},
                                                target_labels_per_class=5))
    _repro(path)
    target = _json(path, "data/prepared/target/manifest.json")
    assert target["road"] == "task-transfer" and target["label_spaces"]["shared_classes"] == []
    assert _json(path, "reports/validation.json")["road"] == "task-transfer"
    similarity = _json(path, "reports/similarity.json")
    assert similarity["class_conditional"]["per_class"] == {} and "no class in common" in \
        similarity["class_conditional"]["skipped"]
    assert [b["layer"] for b in similarity["block_transferability"]] == ["input", "conv1", "conv2", "fc"]
    assert similarity["depth"]["reason"].startswith("LogME peaks at block")
    selection = _json(path, "reports/selection.json")
    cands = {c["method"]: c for c in selection["candidates"]}
    assert not cands["dann"]["eligible"] and not cands["source-only"]["eligible"]
    evaluation = _json(path, "reports/evaluation.json")
    assert evaluation["road"] == "task-transfer" and evaluation["source_only_accuracy"] is None
    baselines = {n for n, m in evaluation["models"].items() if m["role"] == "baseline"}
    assert baselines == {"target-only", "linear-probe"} - {evaluation["chosen"]}
    assert evaluation["baseline"] in baselines
    assert "Road: task transfer" in (path / "reports/evaluation/evaluation.md").read_text()
    adapted = json.loads((path / "models/adapted/model.json").read_text())
    assert adapted["spec"]["classes"] == DIGITS[5:] and adapted["spec"]["num_classes"] == 5


def test_a_new_task_that_shares_some_classes_in_trial_mode(tmp_path):
    params = _params(source={"classes": DIGITS[:7]}, target={"classes": DIGITS[4:]}, target_labels_per_class=3)
    params["select"].update(mode="trial", budget_epochs=3)
    path = make_project(tmp_path / "p", params)
    _repro(path)
    spaces = _json(path, "data/prepared/target/manifest.json")["label_spaces"]
    assert spaces["shared_classes"] == ["4", "5", "6"] and spaces["new_classes"] == ["7", "8", "9"]
    similarity = _json(path, "reports/similarity.json")
    assert set(similarity["class_conditional"]["per_class"]) <= {"4", "5", "6"}
    selection = _json(path, "reports/selection.json")
    tried = {t["method"] for t in selection["trials"]}
    assert tried and not tried & {"dann", "cdan", "source-only"}
    assert {"layer-transfer", "linear-probe", "target-only"} <= tried
    evaluation = _json(path, "reports/evaluation.json")
    assert evaluation["chosen"] == selection["method"] and evaluation["road"] == "task-transfer"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A domain-adaptation project that trained and registered its own source model."""
    path = make_project(tmp_path_factory.mktemp("roads") / "proj")
    _repro(path)
    return path


def test_a_model_imported_from_the_registry_and_from_a_weights_folder(trained):
    path = trained
    first = _json(path, "reports/pretrain.json")
    set_param(path, "model.pretrained", {"kind": "registry", "uri": "models:/transferlab-source/1"})
    ran = _repro(path)
    assert "pretrain" in ran and "validate" not in ran
    imported = _json(path, "reports/pretrain.json")
    assert imported["source_val_accuracy"] == first["source_val_accuracy"]
    assert imported["imported"]["kind"] == "registry" and imported["imported"]["registry_version"] == "1"
    version = _client(path).get_model_version("transferlab-source", "2")
    assert version.tags["imported.kind"] == "registry"

    shutil.copytree(path / "models/source", path / "models/pretrained/mine")
    set_param(path, "model.pretrained", {"kind": "folder", "path": "models/pretrained/mine"})
    _repro(path)
    again = _json(path, "reports/pretrain.json")
    assert again["source_val_accuracy"] == first["source_val_accuracy"] and again["imported"]["tracked_by_dvc"]
    # The folder is a DVC dependency: editing it makes pretrain stale.
    (path / "models/pretrained/mine/notes.txt").write_text("changed")
    assert "pretrain" in sh([str(BIN / "dvc"), "status"], path).stdout


def test_source_free_adaptation_from_a_model_without_source_data(trained):
    path = trained
    if not (path / "models/pretrained/mine").exists():
        shutil.copytree(path / "models/source", path / "models/pretrained/mine")
    set_param(path, "model.pretrained", {"kind": "folder", "path": "models/pretrained/mine"})
    set_param(path, "data.source", None)
    _repro(path)
    assert not _json(path, "data/prepared/source/manifest.json")["available"]
    assert _json(path, "reports/pretrain.json")["source_val_accuracy"] is None
    similarity = _json(path, "reports/similarity.json")
    assert not similarity["source_data"] and "mmd" in similarity["not_measured"]
    assert "predictions" in similarity
    selection = _json(path, "reports/selection.json")
    assert selection["method"] == "shot"
    evaluation = _json(path, "reports/evaluation.json")
    assert evaluation["chosen"] == "shot" and evaluation["baseline"] == "source-only"


def _tiny_resnet(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None, num_classes=10).eval()


def test_a_torchvision_state_dict_is_imported_and_tracked(tmp_path):
    params = _params()
    params["model"]["pretrained"] = {"kind": "torchvision", "arch": "resnet18", "path": "models/pretrained/r18.pth",
                                     "classes": DIGITS, "image_size": 32}
    # What is tested is the import; training and exporting a ResNet would only make the test slow.
    params["select"]["force_method"] = "source-only"
    params["mlflow"]["register_models"] = False
    params["similarity"]["plots"] = False
    path = make_project(tmp_path / "p", params)
    torch.save(_tiny_resnet(0).state_dict(), path / "models/pretrained/r18.pth")
    _repro(path)
    summary = _json(path, "reports/pretrain.json")
    assert summary["imported"]["kind"] == "torchvision" and summary["imported"]["tracked_by_dvc"]
    assert 0.0 <= summary["source_val_accuracy"] <= 1.0
    spec = json.loads((path / "models/source/model.json").read_text())["spec"]
    assert spec["arch"] == "tv-resnet18" and spec["image_size"] == 32 and spec["classes"] == DIGITS
    torch.save(_tiny_resnet(1).state_dict(), path / "models/pretrained/r18.pth")
    assert "pretrain" in sh([str(BIN / "dvc"), "status"], path).stdout


def test_a_file_that_is_not_a_state_dict_or_has_the_wrong_shapes_is_refused(tmp_path):
    params = _params()
    params["model"]["pretrained"] = {"kind": "torchvision", "arch": "resnet18", "path": "models/pretrained/bad.pth",
                                     "classes": DIGITS}
    path = make_project(tmp_path / "p", params)
    (path / "models/pretrained/bad.pth").write_text("")  # preflight refuses a missing file before any stage
    sh([str(BIN / "transferlab"), "stage", "prepare"], path)
    sh([str(BIN / "transferlab"), "stage", "validate"], path)
    for content in ("not weights at all", _tiny_resnet(0).state_dict() | {"fc.weight": torch.zeros(10, 3)}):
        if isinstance(content, str):
            (path / "models/pretrained/bad.pth").write_text(content)
        else:
            torch.save(content, path / "models/pretrained/bad.pth")
        proc = sh([str(BIN / "transferlab"), "stage", "pretrain"], path, check=False)
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert "bad.pth" in lines[0] and "Traceback" not in proc.stderr
        assert not (path / "models/source").exists()
        assert not _client(path).search_model_versions("name='transferlab-source'")
    assert "fc.weight" in lines[0]
