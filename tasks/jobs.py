"""How a stage's independent jobs run, and what a job carries when it runs in another process.

A stage hands its jobs (selection trials, adapt's seeds, the oracle audit's candidates) to a
:class:`JobRunner`: ``map(fn, jobs)`` returns the results in the jobs' order, whatever order they
finish in, so the stage's choices and metrics do not depend on the runner. The local runner is the
one there always was (a loop, or ``select.workers`` threads). A remote runner (``flows/dask_runner.py``:
Prefect task runs on Dask workers) runs jobs in other processes, maybe on other machines, so what
it ships is a :class:`ProjectRef`, the project folder and the hashes of the prepared data and the
source model, never the arrays: each worker process reads them from the project folder (shared
storage) once, checks the hashes, and keeps them for its next jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class RemoteCall:
    """``fn(job)`` with the job's ``source_model`` and ``data`` fields left out; the worker fills them
    in from ``ref`` (see :func:`call_remote`)."""

    fn: Callable[[Any], Any]
    ref: ProjectRef
    job: Any


def call_remote(call: RemoteCall) -> Any:
    torch.set_num_threads(1)  # one trial per worker process; the same single-thread arithmetic as serial
    return call.fn(replace(call.job, source_model=call.ref.source_model(), data=call.ref.data()))


def shipping(runner: JobRunner, ref: ProjectRef) -> MapFn:
    """A ``map_fn`` for jobs that carry ``source_model`` and ``data`` (selection trials): on a remote
    runner each job travels without them and the worker reads them by ``ref``."""
    if not runner.remote:
        return runner.map

    def map_fn(fn, jobs):
        return runner.map(call_remote, [RemoteCall(fn, ref, replace(job, source_model=None, data=None))
                                        for job in jobs])
    return map_fn
