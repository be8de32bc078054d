"""The ``transfer-pipeline`` Prefect flow: dvc.yaml's stages in order, each a task run.

DVC stays in charge of what is stale: for each stage the task asks DVC whether the stage changed,
runs it only if so, then has DVC hash and cache its outputs and write dvc.lock, exactly as
``dvc repro`` would after running the stage's command. The stage code itself runs in this process
(the same function ``transferlab stage NAME`` calls), so the libraries load once per pipeline run
instead of once per stage. Afterwards ``dvc status`` is clean and the two ways of running are
interchangeable. MLflow's parent run is keyed by the flow run.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from dvc.lock import LockError
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State

from flows import prefect_runs, run_logs
from flows.dag import stage_order
from tasks.project_lock import ProjectBusy, hold
from tasks import atomic_dvc_files, preflight, recovery
from transferlab.config import load_params, set_dotted
from transferlab.errors import TransferlabError
from tasks.lineage import FLOW_RUN_ENV, PIPELINE_KEY_ENV
from tasks.paths import EVALUATION, PARAMS, SELECTION
from flows.dask_runner import run_stage as run_stage_code  # the stage's jobs on Dask when params say so

atomic_dvc_files.install()  # DVC never leaves dvc.lock half-written, even without make install

RAN = "ran"
SKIPPED = "skipped (up to date)"
SKIPPED_MESSAGE = "skipped (cached): DVC found nothing changed since the last run of this stage"


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


class _UserErrorsWithoutTraceback(logging.Filter):
    """A user error (missing data, a bad param) is a message for the user, not a bug: Prefect
    still logs the failed task and flow run with the message, but not the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], TransferlabError):
            record.exc_info, record.exc_text = None, None
        return True


_QUIET = _UserErrorsWithoutTraceback()


class _NoTraceback(logging.Filter):
    """On the terminal of `transferlab run`, which writes a failure's traceback to a file and prints
    one line: the console shows Prefect's record of the failure without the stack. Installed on the
    console handler only, the last to see a record, so the Prefect UI still gets the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


def console_without_tracebacks() -> None:
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(isinstance(f, _NoTraceback) for f in handler.filters):
            handler.addFilter(_NoTraceback())


def _quiet_user_errors() -> None:
    # Installed at each flow run, not at import: Prefect may reconfigure its loggers in between.
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logger = logging.getLogger(name)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)


@task(name="trial", retries=0, cache_policy=NO_CACHE)
def run_trial_task(fn: Callable, job: Any) -> Any:
    return fn(job)


def prefect_map(workers: int) -> Callable[[Callable, list], list]:
    """Selection trials as Prefect task runs, ``workers`` at a time on the flow's task runner."""
    def map_fn(fn: Callable, jobs: list) -> list:
        results: list = []
        for start in range(0, len(jobs), workers):
            futures = [run_trial_task.submit(fn, job) for job in jobs[start:start + workers]]
            results.extend(f.result() for f in futures)
        return results
    return map_fn


def skipped_state() -> State:
    """What a stage DVC skipped ends in: Completed, but named "Cached" (as Prefect names a task run
    its own cache answered) with the reason as the state message, so that the Prefect UI tells it
    apart from a stage that ran. The caller still gets ``SKIPPED``."""
    return Completed(name="Cached", message=SKIPPED_MESSAGE, data=SKIPPED)


@task(name="stage", task_run_name="{name}", retries=0, cache_policy=NO_CACHE)
def run_stage(name: str, project_dir: str, hooks: dict[str, Any] | None = None) -> str | State:
    from dvc.repo import Repo

    logger = get_run_logger()
    with _working_dir(project_dir):  # DVC resolves a stage's paths against the working directory
        summary = _run_if_changed(Repo(project_dir), name, hooks or {})
    if summary is None:
        logger.info("stage '%s' %s", name, SKIPPED_MESSAGE)
        return skipped_state()
    logger.info("%s", json.dumps({"stage": name, **summary}, default=str))
    return RAN


def stage_outcome(name: str, project_dir: str, hooks: dict[str, Any] | None = None) -> str:
    """Run the stage's task; ``RAN`` or ``SKIPPED`` (a task that returns a state hands its caller
    that state, not its data)."""
    result = run_stage(name, project_dir, hooks)
    return result.result() if isinstance(result, State) else result


@contextmanager
def _working_dir(path: str) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _run_if_changed(repo, name: str, hooks: dict[str, Any]) -> dict | None:
    try:
        with repo.lock:
            stage = repo.stage.load_one(name=name)
            if not stage.changed():
                return None
            # What `dvc repro` does around a stage's command: clear the old outputs, run,
            # then hash, cache and lock the new ones.
            stage.remove_outs(ignore_remove=False, force=False)
            started = time.time()
            summary = run_stage_code(name, PARAMS, ".", started=started, **hooks)
            stage.save()
            stage.commit()
            stage.dump(update_pipeline=False)
            recovery.save_good_lock(Path("."))
            return summary
    except LockError:
        raise ProjectBusy("DVC's lock on this project is held by another process (a `dvc repro`?): "
                          "wait for it to end") from None
    finally:
        repo.close()


def commit_data_sources(project_dir: str) -> list[str]:
    """Record the new hash of every DVC-tracked dataset (``data/raw/NAME.dvc``) edited in place, as
    ``dvc repro`` does before the stages that depend on it; returns the .dvc files rewritten."""
    from dvc.repo import Repo

    changed = []
    with _working_dir(project_dir):
        repo = Repo(project_dir)
        try:
            with repo.lock:
                for stage in repo.index.stages:
                    if stage.is_data_source and not stage.is_import and stage.changed():
                        stage.save()
                        stage.commit()
                        stage.dump()
                        changed.append(stage.relpath)
        finally:
            repo.close()
    return changed


def apply_overrides(project_dir: Path, overrides: dict[str, Any]) -> None:
    """Write ``overrides`` (dotted keys) into params.yaml, keeping its comments and layout, as
    ``dvc exp run --set-param`` would: DVC reads params from the file, so that is where they go.
    The caller has validated the result (:func:`transferlab.config.load_params` with the overrides)."""
    from ruamel.yaml import YAML

    path = project_dir / PARAMS
    rt = YAML()  # round-trip: comments, key order and quoting survive
    rt.preserve_quotes = True
    rt.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    doc = rt.load(path.read_text()) or {}
    for key, value in overrides.items():
        set_dotted(doc, key, value)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w") as handle:
        rt.dump(doc, handle)
    os.replace(tmp, path)


@contextmanager
def _overrides_applied(root: Path, overrides: dict[str, Any] | None) -> Iterator[None]:
    """params.yaml with ``overrides`` for the length of the run; the file as it was if the run fails,
    so that a failed run leaves the last good run's params (a killed one leaves the overrides, which
    the same command, run again, writes anyway)."""
    if not overrides:
        yield
        return
    path = root / PARAMS
    before = path.read_text()
    apply_overrides(root, overrides)
    try:
        yield
    except BaseException:
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_text(before)
        os.replace(tmp, path)
        raise


def _prefect_recovery(root: Path, flow_run_id: str | None) -> list[str]:
    """Tag this flow run with its project; close the project's flow runs whose process died."""
    if flow_run_id is None:
        return []
    from prefect.client.orchestration import get_client

    prefect_runs.started(flow_run_id)
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(flow_run_id)
            client.update_flow_run(flow_run_id, tags=sorted({*run.tags, prefect_runs.project_tag(root)}))
        return prefect_runs.close_dead_flow_runs(root)
    except Exception as exc:  # noqa: BLE001 - Prefect's bookkeeping must not stop the pipeline
        return [f"could not check for flow runs of dead processes ({type(exc).__name__})"]


def _summary_markdown(project_dir: Path, evaluation: dict | None = None) -> str:
    """The evaluation page's title and summary block, word for word (verdict, gain with CI over the
    named baseline, the method and why, the champion decision and its reason, the MLflow run links)."""
    from transferlab.evaluation.report import render_summary_page

    if evaluation is None:
        evaluation = json.loads((project_dir / EVALUATION).read_text())
    selection = json.loads((project_dir / SELECTION).read_text()) if (project_dir / SELECTION).exists() else {}
    return render_summary_page(evaluation, selection, evaluation.get("links") or {})


@flow(name="transfer-pipeline", log_prints=True)
def transfer_pipeline(project_dir: str = ".", overrides: dict[str, Any] | None = None) -> dict:
    """Run every stage of dvc.yaml in order. ``overrides`` maps dotted param keys to values
    (e.g. ``{"data.target_labels_per_class": 10}``) and is written into params.yaml first."""
    return run_pipeline(Path(project_dir), overrides)


def run_pipeline(project_dir: Path, overrides: dict[str, Any] | None) -> dict:
    """The body of this flow and of the served one (:mod:`flows.deployment`)."""
    _quiet_user_errors()
    root = Path(project_dir).resolve()
    # a run from the Prefect UI takes the lock here; `transferlab run` already holds it
    with hold(root), run_logs.forwarded_to_prefect():
        return _pipeline(root, overrides)


def _pipeline(root: Path, overrides: dict[str, Any] | None) -> dict:
    from prefect.runtime import flow_run

    logger = get_run_logger()
    # Everything that can be known before a stage writes: the params with the overrides, the data
    # they name, the machine. Nothing is written, params.yaml included, if any of it fails.
    params = load_params(root / PARAMS, overrides)
    preflight.check(params, root)
    flow_run_id = flow_run.get_id()
    for note in recovery.recover(root, params.mlflow.experiment) + _prefect_recovery(root, flow_run_id):
        logger.warning("%s", note)
    env = {PIPELINE_KEY_ENV: f"prefect-{flow_run_id or uuid.uuid4().hex}", "DVC_NO_ANALYTICS": "1"}
    if flow_run_id:
        env[FLOW_RUN_ENV] = flow_run_id
    outcome = {}
    with _overrides_applied(root, overrides), _environment(env):
        for source in commit_data_sources(str(root)):
            logger.info("tracked data changed: %s recorded (as `dvc repro` does)", source)
        for name in stage_order(root / "dvc.yaml"):
            hooks = {"map_fn": prefect_map(params.select.workers)} if name == "select" else None
            outcome[name] = stage_outcome(name, str(root), hooks)
    evaluation = json.loads((root / EVALUATION).read_text())
    create_markdown_artifact(markdown=_summary_markdown(root, evaluation), key="transfer-result",
                             description="the evaluation page's summary: verdict, gain over the named baseline, "
                                         "method, champion decision and links")
    if evaluation.get("negative_transfer"):
        logger.warning("NEGATIVE TRANSFER: the adapted model is significantly worse than the best baseline")
    return {"stages": outcome, "evaluation": evaluation}
