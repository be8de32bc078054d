"""MLflow: a parent run per pipeline run, a nested run per stage, registered model versions.

Tracking and registry live in ``sqlite:///mlflow.db`` and artifacts under ``mlruns/`` at the
project root unless ``MLFLOW_TRACKING_URI`` says otherwise.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow  # noqa: E402
from mlflow.data.dataset_source import DatasetSource  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from tasks import lineage  # noqa: E402
from transferlab.errors import ConfigError  # noqa: E402
from tasks.datasets import DataInput  # noqa: E402
from tasks.paths import store_root, tracking_uri  # noqa: E402

PARENT_ROLE = "pipeline"
STAGE_ROLE = "stage"
PROJECT = "transferlab.project"  # the project folder a run, an experiment or a registered model belongs to
MODEL_ROLES = ("source", "adapted", "hop")  # registered as {mlflow.model_prefix}-{role}; hop: tasks/transitive.py
# A model version no evaluation will judge: registered by a stage that failed, or by a process that died.
ABANDONED = "transferlab.abandoned"
# On a version registered by a nested run of a stage (a hop of adapt): the stage run it belongs to.
STAGE_RUN_TAG = "stage_run_id"


_pending_setup: list[Callable[[], None]] = []


def wait_before_first_use(wait: Callable[[], None]) -> None:
    """Another process is creating the store (flows/tracking_store.py): ``configure`` calls
    ``wait`` before it touches the store, so that set-up overlaps everything until then."""
    _pending_setup.append(wait)


def configure(root: Path, experiment: str) -> str:
    """Point MLflow at the project's store; return the experiment id. The experiment belongs to the
    project that created it (tag ``transferlab.project``, artifacts under that project's mlruns/)."""
    while _pending_setup:
        _pending_setup.pop()()
    root = store_root(root)
    uri = tracking_uri(root)
    _set_uris(uri)
    with _one_creator(uri):
        client = MlflowClient()
        found = client.get_experiment_by_name(experiment)
        if found is None:
            try:
                exp_id = client.create_experiment(experiment, artifact_location=(root / "mlruns").as_uri(),
                                                  tags={PROJECT: str(root)})
            except mlflow.exceptions.MlflowException:  # a concurrent experiment of a DVC queue made it first
                found = client.get_experiment_by_name(experiment)
                if found is None:
                    raise
    if found is not None:
        _check_owner(found.tags.get(PROJECT), root, f"experiment '{experiment}'", "mlflow.experiment")
        exp_id = found.experiment_id
        if PROJECT not in found.tags:  # made by an older transferlab: this project claims it
            client.set_experiment_tag(exp_id, PROJECT, str(root))
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


@contextmanager
def _one_creator(uri: str) -> Iterator[None]:
    """While a SQLite store does not exist yet, one process at a time creates it (its schema, the
    experiment): experiments of ``dvc queue start -j N`` start together and share one store."""
    db = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
    if db is None or db.exists():
        yield
        return
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".create-lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _set_uris(uri: str) -> None:
    """Point MLflow at ``uri``. MLflow also writes it into MLFLOW_TRACKING_URI (and the registry's
    variable), which :func:`tracking_uri` reads as the user's choice: left there, a second project
    in this process would log into the first one's store. The variables are put back as they were."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _check_owner(owner: str | None, root: Path, what: str, key: str) -> None:
    """Two projects on one tracking store never share an experiment or a registered model (their
    artifacts and their champions would mix): the second is refused, naming the first."""
    if owner is not None and owner != str(store_root(root)):
        raise ConfigError(f"the {what} in the MLflow store {tracking_uri(root)} belongs to the project at {owner}; "
                          f"give this project its own names ({key} in params.yaml)")


def check_ownership(root: Path, params: Any) -> None:
    """What :func:`configure` and registration would refuse, checked before a run writes anything (a
    store that does not exist yet holds nothing to refuse, and is not made here)."""
    uri = tracking_uri(root)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return
    client = MlflowClient(uri, uri)
    found = client.get_experiment_by_name(params.mlflow.experiment)
    if found is not None:
        _check_owner(found.tags.get(PROJECT), root, f"experiment '{params.mlflow.experiment}'", "mlflow.experiment")
    for role in MODEL_ROLES:
        _check_model_owner(client, model_name(params.mlflow.model_prefix, role), root)


def _check_model_owner(client: MlflowClient, name: str, root: Path) -> None:
    try:
        tags = client.get_registered_model(name).tags
    except mlflow.exceptions.MlflowException:  # not registered yet
        return
    _check_owner(tags.get(PROJECT), root, f"registered model '{name}'", "mlflow.model_prefix")


SOURCE_NAME, SOURCE_TYPE = "mlflow.source.name", "mlflow.source.type"


def source_tags(root: Path) -> dict[str, str]:
    """MLflow's Source column: what started the run. Left to MLflow it names the script Python ran:
    Prefect's engine.py for a run started from the Prefect UI, the dvc or transferlab executable
    otherwise; and the parent run, made with the client, had none. Type JOB because the MLflow UI
    shows a JOB's source name whole, while it cuts a LOCAL one to the part after the last '/'."""
    key = lineage.pipeline_key() or ""
    if lineage.flow_run_id() or key.startswith("prefect-"):
        how = "transfer-pipeline (Prefect flow run)"
    elif key.startswith("dvc-"):
        how = "dvc repro"
    else:
        how = "transferlab stage"
    return {SOURCE_NAME: f"{how} in {Path(root).resolve()}", SOURCE_TYPE: "JOB"}


def _parent_run(exp_id: str, key: str | None, tags: dict[str, str]) -> str:
    client = MlflowClient()
    if key is not None:
        found = client.search_runs(
            [exp_id], filter_string=f"tags.`transferlab.pipeline_key` = '{key}'",
            max_results=1, order_by=["attributes.start_time DESC"],
        )
        if found:
            return found[0].info.run_id
    key = key or f"standalone-{uuid.uuid4().hex[:12]}"
    run = client.create_run(exp_id, run_name=f"pipeline {time.strftime('%Y-%m-%d %H:%M:%S')}",
                            tags={"transferlab.role": PARENT_ROLE, "transferlab.pipeline_key": key, **tags})
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


_last_stage_run: list[str] = []


def last_stage_run_id() -> str | None:
    return _last_stage_run[-1] if _last_stage_run else None


def log_timing(run_id: str, *, work_seconds: float, process_seconds: float) -> None:
    client = MlflowClient()
    client.log_metric(run_id, "time.work_s", work_seconds)
    client.log_metric(run_id, "time.stage_s", process_seconds)


@dataclass
class StageRun:
    """Handle to the active stage run that stages log through."""

    run_id: str
    parent_id: str
    lineage: dict[str, str]  # git commit, data hashes, params hash: copied onto every model version
    project: str  # the resolved project folder (the owner of what it registers)

    def ui_url(self, run_id: str, base: str = "http://127.0.0.1:5000") -> str:
        exp_id = mlflow.get_run(run_id).info.experiment_id
        return f"{base}/#/experiments/{exp_id}/runs/{run_id}"

    def log_params(self, params: dict[str, Any]) -> None:
        flat = _flatten(params)
        for start in range(0, len(flat), 90):
            mlflow.log_params(dict(list(flat.items())[start:start + 90]))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        clean = {k: float(v) for k, v in metrics.items() if v is not None and _is_number(v)}
        if clean:
            mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path=folder)
        elif path.exists():
            mlflow.log_artifact(str(path), artifact_path=folder)

    def log_dataset(self, data: DataInput, context: str) -> None:
        """One entry of the MLflow UI's Dataset column: name, source and digest of what was read."""
        from mlflow.data.meta_dataset import MetaDataset

        mlflow.log_input(MetaDataset(ProjectDataSource(data.source), name=data.name, digest=data.digest),
                         context=context, tags=data.tags)

    def set_tags(self, tags: dict[str, Any]) -> None:
        mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def tag_parent(self, tags: dict[str, Any]) -> None:
        client = MlflowClient()
        for k, v in tags.items():
            client.set_tag(self.parent_id, k, str(v))

    def register_model(self, model: Any, name: str, example: Any, tags: dict[str, Any]) -> int:
        """Log ``model`` in MLflow's PyTorch flavour (pt2, no pickle) and register it as a new version.

        transferlab's own safe format (model.safetensors + model.json) travels with it as the model's
        extra files, so that ``model.pretrained: {kind: registry}`` can rebuild the exact network
        (the pt2 graph alone has lost its blocks and spec)."""
        import copy
        import tempfile

        import torch

        from transferlab.models import save_model
        from transferlab.models.io import SPEC, WEIGHTS

        # pt2 serialisation expects contiguous weights; build_model stores conv weights channels-last.
        portable = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
        with tempfile.TemporaryDirectory(prefix="transferlab-weights-") as tmp:
            save_model(model, tmp)
            info = mlflow.pytorch.log_model(
                portable, name="model", input_example=example, serialization_format="pt2",
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
                extra_files=[str(Path(tmp) / WEIGHTS), str(Path(tmp) / SPEC)],
            )
        client = MlflowClient()
        _check_model_owner(client, name, Path(self.project))
        version = mlflow.register_model(info.model_uri, name,
                                        tags={k: str(v) for k, v in {**self.lineage, **tags}.items()})
        if PROJECT not in client.get_registered_model(name).tags:
            client.set_registered_model_tag(name, PROJECT, self.project)
        return int(version.version)


class ProjectDataSource(DatasetSource):
    """Where a stage's data is: a project path (``data/prepared/target``), a user's file, or the
    package a built-in dataset ships in. ``load`` gives the local path; reading stays with the stages."""

    def __init__(self, uri: str):
        self.uri = uri

    @staticmethod
    def _get_source_type() -> str:
        return "transferlab"

    def load(self) -> str:
        if not Path(self.uri).exists():
            raise FileNotFoundError(f"{self.uri} is not a local path here (a package, or data not pulled)")
        return self.uri

    @staticmethod
    def _can_resolve(raw_source) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source) -> "ProjectDataSource":
        return cls(str(raw_source))

    def to_dict(self) -> dict:
        return {"uri": self.uri}

    @classmethod
    def from_dict(cls, source_dict: dict) -> "ProjectDataSource":
        return cls(source_dict["uri"])


def params_hash(params: Any) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(params.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def lineage_tags(root: Path, stage: str, deps: list[Path], params: Any = None) -> dict[str, str]:
    commit, dirty = lineage.git_commit(root)
    tags = {"git.commit": commit, "git.dirty": str(dirty).lower(), "transferlab.stage": stage}
    if params is not None:
        tags["params.sha256"] = params_hash(params)
    tags.update(lineage.data_tags(root, deps))
    flow_run = lineage.flow_run_id()
    if flow_run:
        tags["prefect.flow_run_id"] = flow_run
    return tags


@contextmanager
def stage_run(root: Path, params: Any, stage: str, deps: list[Path]) -> Iterator[StageRun]:
    """A nested MLflow run for ``stage`` under this pipeline run's parent (created if needed), with
    the prepared data it reads among its dataset inputs."""
    exp_id = configure(root, params.mlflow.experiment)
    tags = lineage_tags(root, stage, deps, params)
    # Which project and process a run belongs to: the next run's recovery marks RUNNING ones FAILED.
    # The run's own workspace, not store_root: concurrent queued experiments share a store, and the
    # recovery of one must not take another's live runs for a dead attempt's.
    owner = {PROJECT: str(Path(root).resolve()), "transferlab.pid": str(os.getpid())}
    commit_tags = {k: v for k, v in tags.items() if k.startswith(("git.", "prefect."))}
    source = source_tags(root)
    parent_id = _parent_run(exp_id, lineage.pipeline_key(), {**commit_tags, **owner, **source})
    # Resuming the parent for the length of the stage keeps its status true at every moment:
    # RUNNING while a stage runs, FINISHED (or FAILED) after.
    run_id = None
    try:
        with mlflow.start_run(run_id=parent_id):
            with mlflow.start_run(run_name=stage, nested=True,
                                  tags={"transferlab.role": STAGE_ROLE, **tags, **owner, **source}) as run:
                run_id = run.info.run_id
                _last_stage_run.append(run_id)
                handle = StageRun(run_id, parent_id, {k: v for k, v in tags.items() if k != "transferlab.stage"},
                                  str(store_root(root)))
                for data in prepared_inputs(root, deps, tags):
                    handle.log_dataset(data, context=stage)
                yield handle
    except BaseException as exc:
        _after_failure(run_id, parent_id, interrupted=isinstance(exc, KeyboardInterrupt))
        raise


def _after_failure(run_id: str | None, parent_id: str, interrupted: bool) -> None:
    """A failed stage's model versions are tagged abandoned (no evaluation will judge them, no promotion
    may pick them); an interrupted stage and its pipeline run are KILLED, not FAILED. Best effort: the
    original error is what the user must see."""
    with contextlib.suppress(Exception):
        client = MlflowClient()
        if run_id is not None:
            # A stage's own versions, and those its nested runs registered (adapt's hops: tasks/transitive.py).
            for query in (f"run_id = '{run_id}'", f"tags.{STAGE_RUN_TAG} = '{run_id}'"):
                for version in client.search_model_versions(query):
                    client.set_model_version_tag(version.name, version.version, ABANDONED, "true")
        if interrupted:
            for rid in filter(None, (run_id, parent_id)):
                client.set_terminated(rid, "KILLED")


def prepared_inputs(root: Path, deps: list[Path], tags: dict[str, str]) -> list[DataInput]:
    """The data folders among ``deps``: DVC's md5 as digest where dvc.lock has it and the stage runs
    under DVC (``dvc repro`` or the flow, which keep the lock current), else our sha256."""
    under_dvc = lineage.pipeline_key() is not None
    found = []
    for dep in deps:
        key = str(dep).rstrip("/")
        if not key.startswith("data/") or f"data.sha256.{key}" not in tags:
            continue
        md5 = tags.get(f"dvc.md5.{key}")
        sha = tags[f"data.sha256.{key}"]
        digest = md5 if (md5 and under_dvc) else sha[:32]
        found.append(DataInput(key, key, digest, {k: v for k, v in (("dvc.md5", md5), ("sha256", sha)) if v}))
    return found


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = str(value)[:6000]
    return out


def _is_number(value: Any) -> bool:
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


def model_name(prefix: str, role: str) -> str:
    return f"{prefix}-{role}"
