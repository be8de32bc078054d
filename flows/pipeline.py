"""The ``transfer-pipeline`` Prefect flow: dvc.yaml's stages in order, each a task run.

Each task runs ``dvc repro --single-item STAGE``, so DVC decides what is stale, caches outputs
and writes dvc.lock exactly as a plain ``dvc repro`` does: after a flow run ``dvc status`` is clean
and the two ways of running are interchangeable. MLflow's parent run is keyed by the flow run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.dag import stage_order
from transferlab.config import load_params, set_dotted
from transferlab.errors import TransferlabError
from tasks.lineage import FLOW_RUN_ENV, PIPELINE_KEY_ENV
from tasks.paths import EVALUATION, PARAMS, SELECTION, SIMILARITY


class StageFailed(RuntimeError):
    """A stage exited non-zero; its last output line says why."""


def _dvc() -> str:
    beside = Path(sys.executable).with_name("dvc")
    return str(beside) if beside.exists() else (shutil.which("dvc") or "dvc")


def stage_env(pipeline_key: str, flow_run_id: str | None) -> dict[str, str]:
    env = dict(os.environ)
    # The stage commands (`transferlab stage ...`) live beside this interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env[PIPELINE_KEY_ENV] = pipeline_key
    if flow_run_id:
        env[FLOW_RUN_ENV] = flow_run_id
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("DO_NOT_TRACK", "true")
    return env


@task(name="stage", task_run_name="{name}", retries=0)
def run_stage(name: str, project_dir: str, env: dict[str, str]) -> str:
    logger = get_run_logger()
    proc = subprocess.Popen([_dvc(), "repro", "--single-item", name], cwd=project_dir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            lines.append(line)
            logger.info(line)
    if proc.wait() != 0:
        reason = next((l for l in reversed(lines) if l.startswith("error:")), lines[-1] if lines else "no output")
        raise StageFailed(f"stage '{name}' failed: {reason}")
    skipped = any("didn't change, skipping" in l for l in lines)
    return "skipped (up to date)" if skipped else "ran"


def apply_overrides(project_dir: Path, overrides: dict[str, Any]) -> None:
    """Write ``overrides`` (dotted keys) into params.yaml after validating the result, as
    ``dvc exp run --set-param`` would: DVC reads params from the file, so that is where they go."""
    path = project_dir / PARAMS
    raw = yaml.safe_load(path.read_text()) or {}
    for key, value in overrides.items():
        set_dotted(raw, key, value)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(raw, sort_keys=False))
    try:
        load_params(tmp)
    except TransferlabError:
        tmp.unlink()
        raise
    os.replace(tmp, path)


def _summary_markdown(project_dir: Path) -> str:
    evaluation = json.loads((project_dir / EVALUATION).read_text())
    lines = ["# transfer-pipeline result", ""]
    for key in ("method", "adapted_accuracy", "source_only_accuracy", "transfer_gain", "negative_transfer",
                "champion_moved"):
        if key in evaluation:
            lines.append(f"- **{key}**: {evaluation[key]}")
    if (project_dir / SELECTION).exists():
        for reason in json.loads((project_dir / SELECTION).read_text()).get("reasons", []):
            lines.append(f"- selection: {reason}")
    if (project_dir / SIMILARITY).exists():
        mmd = json.loads((project_dir / SIMILARITY).read_text())["mmd"]
        lines.append(f"- **MMD²**: {mmd['mmd2']:.4g} (p = {mmd['p_value']:.3g})")
    return "\n".join(lines)


@flow(name="transfer-pipeline", log_prints=True)
def transfer_pipeline(project_dir: str = ".", overrides: dict[str, Any] | None = None) -> dict:
    """Run every stage of dvc.yaml in order. ``overrides`` maps dotted param keys to values
    (e.g. ``{"data.target_labels_per_class": 10}``) and is written into params.yaml first."""
    from prefect.runtime import flow_run

    logger = get_run_logger()
    root = Path(project_dir).resolve()
    if overrides:
        apply_overrides(root, overrides)
    load_params(root / PARAMS)  # fail fast, with the key named, before any stage starts
    flow_run_id = flow_run.get_id()
    env = stage_env(f"prefect-{flow_run_id or uuid.uuid4().hex}", flow_run_id)
    outcome = {}
    for name in stage_order(root / "dvc.yaml"):
        outcome[name] = run_stage(name, str(root), env)
    evaluation = json.loads((root / EVALUATION).read_text())
    create_markdown_artifact(markdown=_summary_markdown(root), key="transfer-result",
                             description="transfer gain and negative-transfer verdict")
    if evaluation.get("negative_transfer"):
        logger.warning("NEGATIVE TRANSFER: the adapted model is significantly worse than the best baseline")
    return {"stages": outcome, "evaluation": evaluation}
