"""The stage registry: name -> module with ``NAME``, ``DEPS`` and ``run(params, root)``.

The order of the pipeline is dvc.yaml's; this only says which code a name runs.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from transferlab import progress
from transferlab.config import load_params
from transferlab.errors import ConfigError
from tasks import preflight, timing

STAGE_MODULES = {
    "prepare": "tasks.prepare",
    "validate": "tasks.validate",
    "pretrain": "tasks.pretrain",
    "similarity": "tasks.similarity",
    "select": "tasks.select",
    "adapt": "tasks.adapt",
    "evaluate": "tasks.evaluate",
}


def stage_module(name: str):
    if name not in STAGE_MODULES:
        raise ConfigError(f"unknown stage '{name}'; stages are: {', '.join(STAGE_MODULES)}")
    return importlib.import_module(STAGE_MODULES[name])


def run_stage(name: str, params_path: str | Path = "params.yaml", root: str | Path = ".",
              started: float | None = None, **hooks) -> dict:
    """Run one stage; ``started`` is when the process began (for the work/overhead split); ``hooks``
    are keyword arguments for the stage's ``run`` (the flow passes select a Prefect ``map_fn``)."""
    module = stage_module(name)
    from tasks import tracking

    timing.reset()
    started = started or time.time()
    before = tracking.last_stage_run_id()
    root = Path(root)
    params = load_params(root / params_path if not Path(params_path).is_absolute() else params_path)
    preflight.check(params, root)
    with progress.labelled(name):  # every progress line says which stage it comes from
        summary = module.run(params, root, **hooks)
    if (run_id := tracking.last_stage_run_id()) not in (None, before):
        tracking.log_timing(run_id, work_seconds=timing.work_seconds(), process_seconds=time.time() - started)
    return summary
