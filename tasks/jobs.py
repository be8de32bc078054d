"""How a stage's independent jobs run, and what a job carries when it runs in another process.

A stage hands its jobs (selection trials, adapt's seeds, the oracle audit's candidates) to a
:class:`JobRunner`: ``map(fn, jobs)`` returns the results in the jobs' order, whatever order they
finish in, so the stage's choices and metrics do not depend on the runner. The local runner is the
one there always was (a loop, or ``select.workers`` threads). A remote runner (``flows/dask_runner.py``:
Prefect task runs on Dask workers) runs jobs in other processes, maybe on other machines, so what
it ships is a :class:`ProjectRef`, the project folder and the hashes of the prepared data and the
source model, never the arrays: each worker process reads them from the project folder (shared
storage) once, checks the hashes, and keeps them for its next jobs. A selection trial's training
state (model, optimiser, checkpoint: megabytes per trial) goes the same way between rounds: the
worker leaves it in the stage's staging folder as a :class:`StateFile`, and the trial that continues
it reads it back, so only a path and three numbers travel through the scheduler.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tasks.io import input_hash
from tasks.paths import PREPARED_SOURCE, PREPARED_TARGET
from transferlab.errors import DataError

MapFn = Callable[[Callable[[Any], Any], list], list]


def serial_map(fn: Callable[[Any], Any], jobs: list) -> list:
    return [fn(job) for job in jobs]


@dataclass(frozen=True)
class JobRunner:
    """``map(fn, jobs) -> results in order``; ``remote``: the jobs run in other processes, so the stage
    ships a :class:`ProjectRef` instead of in-memory data and models."""

    map: MapFn = serial_map
    remote: bool = False


LOCAL = JobRunner()


@dataclass(frozen=True)
class ProjectRef:
    """The project folder and the hash of each input a job reads (prepared data, source model); with
    several candidate sources, ``candidate`` names the one the jobs train from (None: select's choice)."""

    root: str
    hashes: tuple[tuple[str, str], ...]
    candidate: int | None = None

    @classmethod
    def of(cls, root: Path, candidate: int | None = None) -> ProjectRef:
        from tasks.data_files import source_model_folder

        root = Path(root).resolve()
        model = str(source_model_folder(root, candidate).relative_to(root))
        paths = (PREPARED_SOURCE, PREPARED_TARGET, model)
        return cls(str(root), tuple((str(p), input_hash(root / p)) for p in paths), candidate)

    def source_model(self) -> torch.nn.Module:
        return _loaded(self)[0]

    def data(self):
        return _loaded(self)[1]


@lru_cache(maxsize=2)
def _loaded(ref: ProjectRef) -> tuple[torch.nn.Module, Any]:
    """What ``ref`` names, read once per worker process and checked against the hashes the stage saw:
    a worker on a machine whose copy of the project differs would train on other data."""
    from tasks.data_files import adaptation_data, source_model_folder
    from transferlab.models import load_model

    root = Path(ref.root)
    for path, expected in ref.hashes:
        if not (root / path).exists() or input_hash(root / path) != expected:
            raise DataError(f"{root / path} on this worker is not what the stage read (missing or another hash): "
                            "the project folder must be shared storage that every Dask worker sees")
    return load_model(source_model_folder(root, ref.candidate)), adaptation_data(root, ref.candidate)


@contextlib.contextmanager
def staging_folder(root: Path, within: Path, kind: str) -> Iterator[Path]:
    """A fresh ``root/within/.KIND-jobs-*`` folder (not created here) for what workers hand back, removed after."""
    staging = Path(root).resolve() / within / f".{kind}-jobs-{uuid.uuid4().hex[:8]}"
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass(frozen=True)
class StateFile:
    """A trial's :class:`~transferlab.training.continuation.RunState` in a file, with the numbers
    selection reads between rounds (how far the run got); the tensors stay in the file."""

    path: str
    step: int
    steps_per_epoch: int
    stopped_early: bool

    @classmethod
    def save(cls, state: Any, path: Path) -> StateFile:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)  # a worker that dies while writing leaves no state a retry could misread
        return cls(str(path), state.step, state.steps_per_epoch, state.stopped_early)

    def load(self) -> Any:
        # weights_only: the unpickler builds tensors, plain containers and only the classes named here
        # (a RunState and the NumPy arrays of its batch streams), never arbitrary code from the file.
        from transferlab.training.continuation import RunState

        with torch.serialization.safe_globals([RunState, np.ndarray, np.dtype, np.dtypes.Int64DType,
                                               np._core.multiarray._reconstruct]):
            return torch.load(self.path, weights_only=True)


@dataclass(frozen=True)
class RemoteCall:
    """``fn(job)`` with the job's ``source_model`` and ``data`` fields left out; the worker fills them
    in from ``ref`` (see :func:`call_remote`). With ``states`` (a folder), the job's ``resume`` and the
    result's ``states`` travel as :class:`StateFile`s in that folder."""

    fn: Callable[[Any], Any]
    ref: ProjectRef
    job: Any
    states: str | None = None


def call_remote(call: RemoteCall) -> Any:
    torch.set_num_threads(1)  # one trial per worker process; the same single-thread arithmetic as serial
    job = replace(call.job, source_model=call.ref.source_model(), data=call.ref.data())
    if call.states is None:
        return call.fn(job)
    result = call.fn(replace(job, resume={fold: state.load() for fold, state in job.resume.items()}))
    result.states = {fold: StateFile.save(state, Path(call.states) / f"{job.trial_id}-{fold}.pt")
                     for fold, state in result.states.items()}
    return result


def shipping(runner: JobRunner, ref: ProjectRef, states: Path | None = None) -> MapFn:
    """A ``map_fn`` for jobs that carry ``source_model`` and ``data`` (selection trials): on a remote
    runner each job travels without them and the worker reads them by ``ref``; with ``states`` (a
    folder in the project, shared storage), training states travel as files there too."""
    if not runner.remote:
        return runner.map

    def map_fn(fn, jobs):
        return runner.map(call_remote, [RemoteCall(fn, ref, replace(job, source_model=None, data=None),
                                                   None if states is None else str(states)) for job in jobs])
    return map_fn
