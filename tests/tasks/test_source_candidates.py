"""Several candidate sources: which folder later stages read, and what select records (no training)."""

import pytest

from tasks.data_files import source_folder, source_model_folder
from tasks.io import write_json, write_manifest
from tasks.paths import PREPARED_SOURCE, SELECTION, SOURCE_MODEL
from tasks.prepare import candidate_names
from tasks.select import chosen_source_entry
from transferlab.data import DomainSpec
from transferlab.errors import DataError


def _candidates(root, names):
    (root / PREPARED_SOURCE).mkdir(parents=True)
    write_manifest(root / PREPARED_SOURCE, "source-candidates", [], candidates=names, classes=["a", "b"])


def test_single_source_folders_are_unchanged(tmp_path):
    (tmp_path / PREPARED_SOURCE).mkdir(parents=True)
    write_manifest(tmp_path / PREPARED_SOURCE, "source-splits", [], classes=["a", "b"])
    assert source_folder(tmp_path) == tmp_path / PREPARED_SOURCE
    assert source_model_folder(tmp_path) == tmp_path / SOURCE_MODEL


def test_candidate_folders_follow_the_selection_and_refuse_without_one(tmp_path):
    _candidates(tmp_path, ["mnist5k", "usps"])
    assert source_folder(tmp_path, 0) == tmp_path / PREPARED_SOURCE / "candidates" / "0"
    with pytest.raises(DataError, match="selection report"):
        source_folder(tmp_path)
    write_json(tmp_path / SELECTION, {"method": "dann"})
    with pytest.raises(DataError, match="names no chosen source"):
        source_model_folder(tmp_path)
    write_json(tmp_path / SELECTION, {"method": "dann", "source": {"index": 1, "name": "usps"}})
    assert source_folder(tmp_path) == tmp_path / PREPARED_SOURCE / "candidates" / "1"
    assert source_model_folder(tmp_path) == tmp_path / SOURCE_MODEL / "candidates" / "1"
    with pytest.raises(DataError, match="no candidate source 2"):
        source_folder(tmp_path, 2)


def test_candidate_names_are_readable_and_unique():
    specs = [DomainSpec(name="mnist5k"), DomainSpec(name="mnist5k", shifts=[{"name": "rotate", "severity": 0.5}]),
             DomainSpec(name="usps", path="a"), DomainSpec(name="usps", path="b")]
    assert candidate_names(specs) == ["mnist5k", "mnist5k+rotate(0.5)", "usps", "usps#3"]
    from transferlab.config import PretrainedModel, SourceModelCandidate

    models = [SourceModelCandidate(model=PretrainedModel(kind="folder", path="models/pretrained/digits")),
              SourceModelCandidate(model=PretrainedModel(kind="registry", uri="models:/zoo/3")),
              SourceModelCandidate(model=PretrainedModel(kind="folder", path="elsewhere/digits")),
              SourceModelCandidate(model=PretrainedModel(kind="folder", path="x"), name="mine")]
    assert candidate_names(models) == ["model:digits", "model:zoo/3", "model:digits#2", "mine"]


def test_select_records_the_first_ranked_source_and_why():
    assert chosen_source_entry({"mmd": {}}) is None
    ranking = {"rule": "logme", "rule_text": "LogME, highest first",
               "ranking": [{"rank": 1, "index": 2, "name": "usps", "score": 0.5, "reason": "usps: rank 1 of 2: LogME 0.5.",
                            "measurements": {}},
                           {"rank": 2, "index": 0, "name": "mnist5k", "score": 0.1, "reason": "mnist5k: rank 2 of 2.",
                            "measurements": {}}]}
    entry = chosen_source_entry({"source_ranking": ranking})
    assert entry["index"] == 2 and entry["name"] == "usps" and entry["rule"] == "logme"
    assert entry["why"] == ("Source: 'usps' is ranked first of 2 candidates by LogME, highest first. "
                            "usps: rank 1 of 2: LogME 0.5.")
    assert [r["name"] for r in entry["ranking"]] == ["usps", "mnist5k"] and "measurements" not in entry["ranking"][0]
