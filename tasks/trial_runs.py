"""Each selection trial as one nested MLflow run under the select stage's run, whoever runs the trial.

- A store that one process must own (SQLite, a local folder): the stage process writes each trial
  when its round is done. Workers return numbers and never touch the store, so a SQLite file has one
  writer, and a worker that dies mid-trial leaves nothing behind (its retry's result is logged once).
- A tracking server (``http``, ``https``, ``databricks``), with trials on remote workers: each worker
  opens its trial's run when the trial starts and closes it when the trial ends, so the MLflow UI
  shows trials while they train; the stage then adds the one number only the whole round decides
  (the rank ``score``). A worker that dies leaves its run RUNNING; the attempt that runs the trial
  again marks that run FAILED before it opens its own, so every trial ends with exactly one FINISHED
  run, and a dead attempt's run says it failed.

Both ways write the same fields with the same rule (:func:`log_fields`), so the run tree does not
depend on where the trials ran.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from mlflow.tracking import MlflowClient

SERVER_SCHEMES = ("http", "https", "databricks")
TRIAL_ID = "transferlab.trial_id"
WRITTEN_BY = "transferlab.written_by"  # host:pid of the process that opened the run
RANKED_LATER = ("score",)  # set by the round's ranking, after the trial itself has ended


def logs_directly(uri: str) -> bool:
    """Whether workers may write to this store themselves (a server takes many writers)."""
    return urlparse(uri).scheme in SERVER_SCHEMES


@dataclass(frozen=True)
class TrialRuns:
    """Where the trial runs go: the tracking URI, the experiment and the select stage's run."""

    uri: str
    experiment_id: str
    parent_run_id: str

    def open(self, client: MlflowClient, trial_id: str, method: str) -> str:
        """A new RUNNING run for ``trial_id``."""
        run = client.create_run(self.experiment_id, run_name=f"trial {trial_id}",
                                tags={"mlflow.parentRunId": self.parent_run_id, "transferlab.role": "trial",
                                      "method": method, TRIAL_ID: trial_id,
                                      WRITTEN_BY: f"{socket.gethostname()}:{os.getpid()}"})
        return run.info.run_id

    def find(self, client: MlflowClient, trial_id: str, status: str) -> list[str]:
        found = client.search_runs([self.experiment_id],
                                   f"tags.mlflow.parentRunId = '{self.parent_run_id}' and "
                                   f"tags.`{TRIAL_ID}` = '{trial_id}' and attributes.status = '{status}'")
        return [r.info.run_id for r in found]


def log_fields(client: MlflowClient, run_id: str, fields: dict[str, Any]) -> None:
    """Numbers as metrics, text and flags as ``trial.*`` tags, nested records as params."""
    for key, value in fields.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            client.log_metric(run_id, key, float(value))
        elif isinstance(value, (str, bool)) or value is None:
            client.set_tag(run_id, f"trial.{key}", str(value)[:5000])
        elif isinstance(value, dict):
            client.log_param(run_id, key, str(value)[:6000])


def _closed(client: MlflowClient, run_id: str, write: Callable[[], Any]) -> Any:
    """``write()``, then the run FINISHED; FAILED if anything raised (never left RUNNING half-written)."""
    try:
        out = write()
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return out


def stage_logger(runs: TrialRuns) -> Callable[[dict], None]:
    """The stage process writes each finished trial, whole (stores with one writer)."""
    client = MlflowClient(runs.uri)

    def log(trial: dict) -> None:
        run_id = runs.open(client, trial["trial_id"], str(trial.get("method")))
        _closed(client, run_id, lambda: log_fields(client, run_id, trial))
    return log


def score_logger(runs: TrialRuns) -> Callable[[dict], None]:
    """The stage adds the rank score to the run the worker wrote (tracking servers)."""
    client = MlflowClient(runs.uri)

    def log(trial: dict) -> None:
        finished = runs.find(client, trial["trial_id"], "FINISHED")
        if len(finished) != 1:
            raise RuntimeError(f"trial {trial['trial_id']} has {len(finished)} finished MLflow runs, not 1")
        log_fields(client, finished[0], {key: trial[key] for key in RANKED_LATER})
    return log


@dataclass(frozen=True)
class LoggedTrial:
    """``fn(job)`` on a worker, inside the trial's own run on the tracking server (picklable)."""

    runs: TrialRuns
    fn: Callable[[Any], Any]

    def __call__(self, job: Any) -> Any:
        client = MlflowClient(self.runs.uri)
        for stale in self.runs.find(client, job.trial_id, "RUNNING"):  # an earlier attempt's worker died
            client.set_terminated(stale, "FAILED")
        run_id = self.runs.open(client, job.trial_id, job.arm.method)

        def trial() -> Any:
            result = self.fn(job)
            log_fields(client, run_id, {k: v for k, v in result.to_dict().items() if k not in RANKED_LATER})
            return result
        return _closed(client, run_id, trial)
