"""What a run checks before any stage writes (tasks/preflight.py): the machine, the data the params
name, a forced method's needs."""

import pytest
import torch

from tasks import preflight
from transferlab.config import parse_params
from transferlab.errors import ConfigError, DataError


def _params(**sections):
    return parse_params(sections)


@pytest.fixture(autouse=True)
def _own_store(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # MLflow sets it in-process once used


def test_the_defaults_pass(tmp_path):
    preflight.check(_params(), tmp_path)


def test_cuda_without_a_gpu_is_refused_by_key(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device 'cuda' was requested but no CUDA GPU is available"):
        preflight.check(_params(device="cuda"), tmp_path)


def test_a_forced_method_that_needs_labels_needs_a_label_budget(tmp_path):
    with pytest.raises(ConfigError, match="select.force_method: 'finetune' needs labelled target samples, but "
                                          "data.target_labels_per_class is 0"):
        preflight.check(_params(select={"force_method": "finetune"}), tmp_path)
    preflight.check(_params(select={"force_method": "finetune"}, data={"target_labels_per_class": 3}), tmp_path)


def test_a_forced_method_that_trains_on_source_data_needs_some(tmp_path):
    (tmp_path / "models/pretrained/m").mkdir(parents=True)
    params = _params(data={"source": None}, model={"pretrained": {"kind": "folder", "path": "models/pretrained/m"}},
                     select={"force_method": "dann"})
    with pytest.raises(ConfigError, match="'dann' trains with source data, but there is none"):
        preflight.check(params, tmp_path)


def test_a_forced_multi_source_method_needs_several_sources(tmp_path):
    with pytest.raises(ConfigError, match="'multi-source' trains on several candidate sources, but there is one"):
        preflight.check(_params(select={"force_method": "multi-source"}), tmp_path)
    preflight.check(_params(data={"sources": [{"name": "mnist5k"}, {"name": "uci-digits"}]},
                            select={"force_method": "multi-source"}), tmp_path)


def test_unknown_datasets_and_missing_files_are_found_before_reading(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'no-such-set'"):
        preflight.check(_params(data={"target": {"name": "no-such-set"}}), tmp_path)
    with pytest.raises(DataError, match="dataset 'npz': missing.npz does not exist"):
        preflight.check(_params(data={"target": {"name": "npz", "path": "missing.npz"}}), tmp_path)
    with pytest.raises(ConfigError, match="model.pretrained.path: models/pretrained/none does not exist"):
        preflight.check(_params(model={"pretrained": {"kind": "folder", "path": "models/pretrained/none"}}), tmp_path)


def test_a_missing_attribute_table_and_a_forced_zero_shot_method_without_one(tmp_path):
    with pytest.raises(ConfigError, match="data.attributes: the attribute table nope.csv does not exist"):
        preflight.check(_params(data={"attributes": "nope.csv"}), tmp_path)
    with pytest.raises(ConfigError, match="select.force_method: 'dap' predicts classes through their attributes"):
        preflight.check(_params(select={"force_method": "dap"}), tmp_path)
    preflight.check(_params(select={"force_method": "eszsl"}, data={"attributes": "builtin:digits"}), tmp_path)
