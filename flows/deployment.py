"""The deployment the Prefect UI triggers: the pipeline of the project ``transferlab serve`` runs in.

The project folder is fixed when the deployment is served (``transferlab serve --project``), not a
run parameter, so a UI user cannot point a run at another folder. From the UI, "Run" -> "Custom run"
takes ``overrides`` only (dotted params keys -> values, e.g. ``{"data.target_labels_per_class": 10}``);
they are validated and written into params.yaml before the stages run, so the run stays
reproducible with ``dvc repro``. An override may name a file outside the project only where the key
is a dataset's path (``data.source.path``, ``data.target.path``): data may live anywhere, while every
other path the params hold (an imported model's) must lie inside the project.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow

from flows.pipeline import run_pipeline
from transferlab.errors import ConfigError

SERVED_PROJECT_ENV = "TRANSFERLAB_SERVED_PROJECT"
DATASET_PATH_KEYS = ("data.source.path", "data.target.path")


def _paths_in(key: str, value: Any) -> list[tuple[str, str]]:
    """(dotted key, value) of every 'path' a value sets, however deep."""
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in _paths_in(f"{key}.{k}", v)]
    return [(key, value)] if key.split(".")[-1] == "path" and isinstance(value, str) else []


def check_ui_overrides(project: Path, overrides: dict[str, Any] | None) -> None:
    """Refuse an override that names a path outside ``project`` under a key that is not a dataset's."""
    project = project.resolve()
    for key, value in (overrides or {}).items():
        for where, path in _paths_in(key, value):
            if where in DATASET_PATH_KEYS:
                continue
            resolved = (project / Path(path).expanduser()).resolve()
            if not resolved.is_relative_to(project):
                raise ConfigError(f"override {where}: {path} lies outside the project {project}; only a "
                                  "dataset's path (data.source.path, data.target.path) may")


@flow(name="transfer-pipeline", log_prints=True)
def served_pipeline(overrides: dict[str, Any] | None = None) -> dict:
    """Run every stage of dvc.yaml in order in the served project. ``overrides`` maps dotted param
    keys to values (e.g. ``{"data.target_labels_per_class": 10}``) and is written into params.yaml first."""
    project = os.environ.get(SERVED_PROJECT_ENV)
    if not project:
        raise ConfigError(f"this deployment runs only under `transferlab serve` (it sets {SERVED_PROJECT_ENV})")
    check_ui_overrides(Path(project), overrides)
    return run_pipeline(Path(project), overrides)


def pipeline_deployment(project: Path, name: str = "transfer-pipeline"):
    """The deployment of ``project``'s pipeline; its runs execute in this process's environment, which
    now names the project."""
    os.environ[SERVED_PROJECT_ENV] = str(Path(project).resolve())
    return served_pipeline.to_deployment(
        name=name,
        parameters={"overrides": {}},
        description=f"prepare -> validate -> pretrain -> similarity -> select -> adapt -> evaluate in "
                    f"{Path(project).resolve()} (dvc.yaml's stages, each a task run); overrides are written "
                    "into params.yaml",
        tags=["transferlab"],
    )
