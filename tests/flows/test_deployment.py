from pathlib import Path

from flows.deployment import pipeline_deployment


def test_deployment_binds_the_project_and_exposes_overrides(tmp_path):
    deployment = pipeline_deployment(tmp_path, "ui")
    assert deployment.name == "ui"
    assert deployment.parameters["project_dir"] == str(Path(tmp_path).resolve())
    properties = deployment._parameter_openapi_schema.properties
    assert {"project_dir", "overrides"} <= set(properties)
