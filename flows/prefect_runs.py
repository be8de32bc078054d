"""Prefect's record of a run kept true when the run does not end normally.

- Every pipeline flow run carries the tag ``project:<id>`` of its project folder. At the start of a
  run (which holds the project lock, so no other run of the project is alive), flow runs of the
  project still RUNNING belong to a process that died: they are marked Crashed.
- A run stopped with Ctrl-C is marked Cancelled (Prefect's engine records an interrupt as Crashed).
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType,
                                            FlowRunFilterTags)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.states import Cancelled, Crashed

_current: list[str] = []  # the flow run of this process's pipeline, once it started


def project_tag(root: Path) -> str:
    return "project:" + hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:12]


def started(flow_run_id: str | None) -> None:
    _current[:] = [flow_run_id] if flow_run_id else []


def close_dead_flow_runs(root: Path) -> list[str]:
    """Mark this project's RUNNING flow runs, other than this process's, Crashed; returns notes."""
    notes = []
    flt = FlowRunFilter(tags=FlowRunFilterTags(all_=[project_tag(root)]),
                        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING])))
    with get_client(sync_client=True) as client:
        for run in client.read_flow_runs(flow_run_filter=flt, sort=FlowRunSort.ID_DESC, limit=200):
            if str(run.id) in _current:
                continue
            client.set_flow_run_state(run.id, Crashed(message="its process died; found by the next run"),
                                      force=True)
            notes.append(f"Prefect flow run '{run.name}' of a dead process marked Crashed")
    return notes


def mark_interrupted() -> None:
    """Record this process's flow run as Cancelled (best effort: the interrupt must not fail twice)."""
    if not _current:
        return
    with contextlib.suppress(Exception), get_client(sync_client=True) as client:
        client.set_flow_run_state(_current[0], Cancelled(message="interrupted (Ctrl-C)"), force=True)
