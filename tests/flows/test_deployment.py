from pathlib import Path

import pytest

from flows.deployment import SERVED_PROJECT_ENV, check_ui_overrides, pipeline_deployment, served_pipeline
from transferlab.errors import ConfigError


def test_the_project_is_fixed_when_served_and_only_overrides_are_run_parameters(tmp_path, monkeypatch):
    monkeypatch.delenv(SERVED_PROJECT_ENV, raising=False)
    deployment = pipeline_deployment(tmp_path, "ui")
    assert deployment.name == "ui"
    assert set(deployment._parameter_openapi_schema.properties) == {"overrides"}
    assert deployment.parameters == {"overrides": {}}
    import os

    assert os.environ[SERVED_PROJECT_ENV] == str(tmp_path.resolve())


def test_a_served_run_without_its_project_is_refused(monkeypatch):
    monkeypatch.delenv(SERVED_PROJECT_ENV, raising=False)
    with pytest.raises(ConfigError, match="only under `transferlab serve`"):
        served_pipeline.fn(overrides={})


def test_ui_overrides_may_not_name_paths_outside_the_project_except_datasets(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    check_ui_overrides(project, {"data.target.path": "/anywhere/data.npz",  # data may live anywhere
                                 "data.source": {"name": "npz", "path": "/elsewhere/src.npz"},
                                 "model.pretrained": {"kind": "folder", "path": "models/pretrained/m"},
                                 "seed": 3})
    with pytest.raises(ConfigError, match="model.pretrained.path: ../outside lies outside"):
        check_ui_overrides(project, {"model.pretrained": {"kind": "folder", "path": "../outside"}})
    with pytest.raises(ConfigError, match="model.pretrained.path"):
        check_ui_overrides(project, {"model.pretrained.path": str(Path("/etc"))})
