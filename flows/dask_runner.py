"""``execution.runner: dask``: a stage's independent jobs as Prefect task runs on Dask workers.

The stages (``tasks/``) know no Prefect: they take a :class:`tasks.jobs.JobRunner`. This module
makes one whose ``map`` submits each job as a Prefect task run through prefect-dask's
``DaskTaskRunner``, and runs the stage inside a small flow that owns that task runner. A sub-flow
per stage, rather than the pipeline flow's own task runner, because the same stage code runs under
``dvc repro`` (``transferlab stage NAME``), where no flow exists to submit to; inside
``transferlab run`` the same flow becomes a sub-flow of the pipeline's stage task run, so both ways
of running submit the jobs alike, and the cluster lives exactly as long as the stage.

Failures: a job that raises is retried by Prefect (``execution.task_retries``); a job whose worker
process dies is run again by Dask's scheduler on a live worker (``distributed.scheduler.allowed-failures``,
set to the same number), under the same Prefect task run. Results come back in the jobs' order.

Prefect API: the workers report their task runs to the API this process uses. Without a configured
one (``PREFECT_API_URL``), Prefect would start a temporary server in every worker process (seconds
each, and the task runs would be recorded nowhere the flow can see), so one local server is started
for the stage and every worker is pointed at it (:class:`flows.local_server.LocalServer`, 127.0.0.1).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tasks.common import adapt_seeds
from tasks.jobs import JobRunner, MapFn
from tasks.stages import run_stage as run_stage_code
from transferlab.config import ExecutionParams, PipelineParams, load_params


def uses_workers(name: str, params: PipelineParams) -> bool:
    """Whether stage ``name`` has independent jobs to hand to Dask with these params."""
    if params.execution.runner != "dask":
        return False
    return {"select": params.select.mode == "trial", "adapt": len(adapt_seeds(params)) > 1,
            "evaluate": params.evaluate.audit}.get(name, False)


def run_stage(name: str, params_path: str | Path = "params.yaml", root: str | Path = ".",
              started: float | None = None, **hooks) -> dict:
    """:func:`tasks.stages.run_stage`, with the stage's jobs on Dask when ``execution.runner`` says so."""
    params_file = Path(root) / params_path if not Path(params_path).is_absolute() else Path(params_path)
    params = load_params(params_file)
    if not uses_workers(name, params):
        return run_stage_code(name, params_path, root, started=started, **hooks)
    hooks.pop("map_fn", None)  # the pipeline's thread-level map is replaced by the Dask one
    return on_dask(params.execution, lambda runner: run_stage_code(name, params_path, root, started=started,
                                                                   runner=runner, **hooks),
                   flow_name=f"{name} on dask")


def on_dask(execution: ExecutionParams, body: Callable[[JobRunner], Any], flow_name: str = "jobs on dask") -> Any:
    """``body(runner)`` inside a flow whose task runner is a DaskTaskRunner for ``execution``."""
    from prefect import flow

    with prefect_api() as api_url, _cluster_config(execution.task_retries):
        @flow(name=flow_name, task_runner=task_runner(execution, api_url), log_prints=False)
        def jobs_flow() -> Any:
            return body(JobRunner(dask_map(execution.task_retries), remote=True))
        return jobs_flow()


def task_runner(execution: ExecutionParams, api_url: str | None = None):
    from prefect_dask import DaskTaskRunner

    if execution.address:
        return DaskTaskRunner(address=execution.address)
    # One thread per worker process: trials are CPU-bound torch work, parallel across processes only.
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **({"PREFECT_API_URL": api_url} if api_url else {})}
    return DaskTaskRunner(cluster_kwargs={"n_workers": execution.n_workers, "threads_per_worker": 1,
                                          "processes": True, "host": "127.0.0.1",
                                          "dashboard_address": "127.0.0.1:0", "env": env})


def dask_map(retries: int) -> MapFn:
    """Every job submitted at once (Dask balances them over the workers); results in the jobs' order."""
    job_task = _job_task().with_options(retries=retries, retry_delay_seconds=0)

    def map_fn(fn: Callable, jobs: list) -> list:
        futures = [job_task.submit(fn, job) for job in jobs]
        return [future.result() for future in futures]
    return map_fn


def _job_task():
    # Made on first use: `transferlab stage` with the local runner never imports Prefect.
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    @task(name="job", cache_policy=NO_CACHE)
    def run_job(fn: Callable, job: Any) -> Any:
        return fn(job)
    return run_job


@contextlib.contextmanager
def prefect_api() -> Iterator[str | None]:
    """The Prefect API URL the workers report to: the configured one, or a local server started here."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    configured = PREFECT_API_URL.value()
    if configured:
        yield configured
        return
    from flows.local_server import LocalServer

    server = LocalServer()
    try:
        server.wait_ready()
        with temporary_settings({PREFECT_API_URL: server.url}):
            yield server.url
    finally:
        server.stop()


QUIET_WORKERS = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "1s",
                 "distributed.admin.system-monitor.interval": "5s",
                 "distributed.worker.memory.monitor-interval": "1s"}


@contextlib.contextmanager
def _cluster_config(retries: int) -> Iterator[None]:
    """Dask settings for the stage's cluster, taken back when it ends.

    - ``allowed-failures``: Dask runs a task whose worker died again on another worker this many
      times (its own retry; Prefect's retries only see exceptions raised inside the task).
    - No ``MALLOC_TRIM_THRESHOLD_``: the nanny's default (65536, set before spawning a worker so
      that glibc gives freed memory back at once) makes every torch step map and unmap its buffers;
      a LeNet training step ran 1.6-1.8x slower with it than without (benchmarks/RESULTS.md,
      section scale-dask). glibc's own adaptive threshold is kept instead. A value the user set in
      the environment still wins (distributed reads the OS environment first).
    - ``worker-saturation`` 1.0: a worker holds only as many tasks as it has threads, the rest
      wait on the scheduler and go, in the order submitted, to whichever worker frees first.
      Trial mode submits a round longest-first; at Dask's default (1.1, so two tasks on a
      one-thread worker) the second trial in a worker's hands waits there even when another
      worker is idle.
    - Quieter workers (:data:`QUIET_WORKERS`): no statistical profiler (it samples every thread's stack
      every 10 ms), the event-loop tick at 1 s instead of 20 ms, the system monitor at 5 s and the
      memory monitor at 1 s instead of 0.5 s and 0.1 s. Each wake-up takes the GIL from the trial's
      thread and a core from the other worker; together they made two busy one-thread workers train
      a LeNet 6 % slower (3.66 s against 3.44 s for 200 steps, 8 interleaved pairs of fresh clusters,
      benchmarks/RESULTS.md section scale-dask); no single one of them showed beyond the noise. What
      is lost: the dashboard's profile page and its finer resource plots; memory limits act within 1 s.
    """
    import dask
    import distributed  # noqa: F401 - its defaults must be in dask's config before the set: on exit the
    # set takes away what it added, and a "distributed" section it created would go whole, leaving the
    # next cluster in this process without its defaults (KeyError: 'comm')

    with dask.config.set({"distributed.scheduler.allowed-failures": retries,
                          "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                          "distributed.scheduler.worker-saturation": 1.0, **QUIET_WORKERS}):
        yield
