"""The deployment the Prefect UI triggers: the pipeline flow bound to this project folder.

From the UI, "Run" -> "Custom run" takes ``overrides`` (dotted params keys -> values, e.g.
``{"data.target_labels_per_class": 10}``); they are validated and written into params.yaml
before the stages run, so the run stays reproducible with `dvc repro`.
"""

from __future__ import annotations

from pathlib import Path

from flows.pipeline import transfer_pipeline


def pipeline_deployment(project: Path, name: str = "transfer-pipeline"):
    return transfer_pipeline.to_deployment(
        name=name,
        parameters={"project_dir": str(Path(project).resolve()), "overrides": {}},
        description="prepare -> validate -> pretrain -> similarity -> select -> adapt -> evaluate "
                    "(dvc.yaml's stages, each a task run); overrides are written into params.yaml",
        tags=["transferlab"],
    )
