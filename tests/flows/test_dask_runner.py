"""execution.runner: dask: trial-mode selection on a 2-process LocalCluster equals the serial run (choice,
scores, MLflow run tree); a worker that dies mid-trial is run again and changes nothing."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cloudpickle
import pytest
from mlflow.tracking import MlflowClient

from flows import dask_runner
from flows.local_server import answers_health, free_port
from tasks import adapt, evaluate, select
from tasks.io import write_json
from tasks.jobs import JobRunner, ProjectRef, RemoteCall, StateFile, call_remote
from tasks.trial_runs import WRITTEN_BY, LoggedTrial, TrialRuns
from tasks.paths import (ADAPTED_MODEL, BASELINE_MODELS, EVALUATION, PREPARED_SOURCE, PREPARED_TARGET, SELECTION,
                         SIMILARITY, SOURCE_MODEL, tracking_uri)
from transferlab.config import ExecutionParams, parse_params
from transferlab.errors import ConfigError, DataError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tasks"))
from blob_project import write_blob_project  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import this test file

SHIFTED = {"mmd": {"mmd2": 0.4, "p_value": 0.001, "normalised": 0.5}, "layers": [], "a_distance": 1.9,
           "transferability": None}
# Three arms, eta 2: two rounds (3 trials, then 2 continued), so continuation state travels too.
PARAMS = {"select": {"mode": "trial", "candidates": ["source-only", "finetune", "target-only"],
                     "budget_epochs": 8, "eta": 2, "search": {}},
          "adapt": {"train": {"epochs": 4, "batch_size": 32}}}
CLUSTER = ExecutionParams(runner="dask", n_workers=2, task_retries=2)
# adapt over two seeds and evaluate's oracle audit, for the seed and audit jobs.
SEEDS = {"data": {"target_labels_per_class": 10}, "mlflow": {"register_models": False},
         "adapt": {"train": {"epochs": 2, "batch_size": 32}, "seeds": [0, 1]},
         "evaluate": {"bootstrap": 100, "audit": True}}
SEED_SELECTION = {"method": "finetune", "reasons": ["test"], "method_params": {},
                  "candidates": [{"method": m, "score": 0.0, "eligible": True, "why": "test"}
                                 for m in ("finetune", "source-only", "target-only", "linear-probe")]}


def _seed_project(root: Path) -> Path:
    write_blob_project(root, source_epochs=2)
    write_json(root / SIMILARITY, SHIFTED)
    write_json(root / SELECTION, SEED_SELECTION)
    return root


def _adapt_and_evaluate(root: Path, runner: JobRunner | None = None) -> None:
    kwargs = {"runner": runner} if runner else {}
    adapt.run(parse_params(SEEDS), root, **kwargs)
    evaluate.run(parse_params(SEEDS), root, **kwargs)
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def _project(root: Path) -> Path:
    write_blob_project(root, source_epochs=3, labels_per_class=6, unlabelled=60, with_test=False)
    write_json(root / SIMILARITY, SHIFTED)
    return root


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The serial run (select.workers 1, this process): the reference."""
    root = _project(tmp_path_factory.mktemp("serial"))
    select.run(parse_params(PARAMS), root)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return root


def _copy_inputs(serial: Path, root: Path) -> Path:
    for folder in (PREPARED_SOURCE, PREPARED_TARGET, SOURCE_MODEL):
        shutil.copytree(serial / folder, root / folder)
    write_json(root / SIMILARITY, SHIFTED)
    return root


def _without_clock(selection: dict) -> dict:
    """The selection minus wall-clock seconds, the one thing a runner may change."""
    out = json.loads(json.dumps(selection))
    for trial in out.get("trials", []):
        trial.pop("runtime_s")
    out["cost"].pop("runtime_s")
    return out


def _run_tree(root: Path, uri: str | None = None) -> tuple[list, list]:
    """(every trial run under the select run: name, status, metrics, params, trial tags; the statuses
    of all runs), clock readings left out."""
    client = MlflowClient(uri or tracking_uri(root))
    exp = client.get_experiment_by_name("transferlab").experiment_id
    stage = client.search_runs([exp], "tags.`transferlab.stage` = 'select'")
    assert len(stage) == 1
    trials = client.search_runs([exp], f"tags.mlflow.parentRunId = '{stage[0].info.run_id}'")
    tree = sorted(((t.info.run_name, t.info.status, {k: v for k, v in t.data.metrics.items() if k != "runtime_s"},
                    t.data.params, {k: v for k, v in t.data.tags.items() if k.startswith("trial.") or k == "method"})
                   for t in trials), key=lambda row: row[0])
    return tree, [r.info.status for r in client.search_runs([exp], "")]


def _selection(root: Path) -> dict:
    return json.loads((root / SELECTION).read_text())


def test_a_shipped_trial_carries_file_references_and_gives_the_serial_selection(serial, tmp_path):
    """In this process, through a pickle round trip as to a worker and back: no job carries the data, the
    source model or a training state (states travel as files in the stage's staging folder, removed
    after), and the worker side (read by reference, hashes checked) gives the serial result."""
    root = _copy_inputs(serial, tmp_path)
    shipped, returned = [], []

    def pickling_map(fn, jobs):
        calls = [cloudpickle.loads(cloudpickle.dumps(job)) for job in jobs]
        shipped.extend(calls)
        results = [cloudpickle.loads(cloudpickle.dumps(fn(call))) for call in calls]
        returned.extend(s for r in results for s in r.states.values())  # selection empties them later
        return results

    select.run(parse_params(PARAMS), root, runner=JobRunner(pickling_map, remote=True))
    assert len(shipped) == 5
    assert all(c.job.data is None and c.job.source_model is None and c.ref.root == str(root.resolve())
               for c in shipped)
    resumed = [s for c in shipped for s in c.job.resume.values()]
    handed_back = returned
    assert resumed and handed_back  # round 2 continues a trained arm from its state
    assert all(isinstance(s, StateFile) for s in resumed + handed_back)
    assert not list((root / "models").glob(".select-jobs-*"))
    assert _without_clock(_selection(root)) == _without_clock(_selection(serial))


def test_a_worker_that_sees_other_files_refuses_the_job(serial, tmp_path):
    root = _copy_inputs(serial, tmp_path)
    ref = ProjectRef.of(root)
    (root / SOURCE_MODEL / "model.json").write_text((root / SOURCE_MODEL / "model.json").read_text() + " ")
    with pytest.raises(DataError, match="shared storage"):
        call_remote(RemoteCall(len, ref, None))


@dataclass(frozen=True)
class _Arm:
    method: str


@dataclass(frozen=True)
class _Job:
    trial_id: str
    arm: _Arm


@dataclass(frozen=True)
class _Result:
    accuracy: float

    def to_dict(self) -> dict:
        return {"trial_id": "r1-00-x", "accuracy": self.accuracy, "score": None}


def _trial(job: _Job) -> _Result:
    return _Result(0.5)


@contextlib.contextmanager
def _mlflow_server(folder: Path) -> Iterator[str]:
    """``mlflow server`` on a free local port (a tracking server: workers log to it themselves)."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{folder / 'm.db'}",
         "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(600):
            if answers_health(f"http://127.0.0.1:{port}"):
                break
            assert process.poll() is None, "mlflow server exited"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the server and the job consumers it starts
        process.wait()


def _die_first_time(marker: str, fn, call):
    """The first trial to reach a worker kills that worker's process (as an OOM kill would)."""
    if not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)
    return fn(call)


@pytest.fixture(scope="module")
def on_cluster(serial, tmp_path_factory):
    """On one 2-process LocalCluster (started once: it is the slow part): the plain dask run, then a
    run whose first trial kills its worker process; their project folders and the kill marker."""
    plain = _copy_inputs(serial, tmp_path_factory.mktemp("dask"))
    killed = _copy_inputs(serial, tmp_path_factory.mktemp("killed"))
    marker = tmp_path_factory.mktemp("marker") / "killed-once"
    seeds = _seed_project(tmp_path_factory.mktemp("seeds"))

    remote = _copy_inputs(serial, tmp_path_factory.mktemp("remote"))
    parent_trim = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    trims, server, scheduler, quiet = [], {}, {}, []

    def body(runner: JobRunner) -> None:
        from prefect.context import FlowRunContext

        trims.extend(runner.map(_malloc_trim_threshold, [0, 1]))
        quiet.extend(runner.map(_worker_wakeups, [0, 1]))
        scheduler["saturation"] = FlowRunContext.get().task_runner.client.run_on_scheduler(_saturation)
        with _mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
            server.update(_on_a_tracking_server(uri, remote, runner, tmp_path_factory.mktemp("marker")))
        select.run(parse_params(PARAMS), plain, runner=runner)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        killing = JobRunner(lambda fn, jobs: runner.map(partial(_die_first_time, str(marker), fn), jobs), remote=True)
        select.run(parse_params(PARAMS), killed, runner=killing)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        _adapt_and_evaluate(seeds, runner)

    dask_runner.on_dask(CLUSTER, body)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return (plain, killed, marker, seeds, (parent_trim, trims, os.environ.get("MALLOC_TRIM_THRESHOLD_")), server,
            scheduler, quiet)


def _on_a_tracking_server(uri: str, root: Path, runner: JobRunner, markers: Path) -> dict:
    """Trial-mode selection with MLflow at a tracking server; then one trial whose worker dies after
    opening its run. Both run trees, read back from the server."""
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        select.run(parse_params(PARAMS), root, runner=runner)
        client = MlflowClient(uri)
        experiment = client.create_experiment("dying trial")
        parent = client.create_run(experiment).info.run_id
        runs = TrialRuns(uri, experiment, parent)
        dying = LoggedTrial(runs, partial(_die_first_time, str(markers / "killed-once"), _trial))
        result = runner.map(dying, [_Job("r1-00-x", _Arm("dann"))])
        dead = [(r.info.status, r.data.tags[WRITTEN_BY], r.data.metrics)
                for r in client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}'")]
        trials = client.search_runs([client.get_experiment_by_name("transferlab").experiment_id],
                                    "tags.`transferlab.role` = 'trial'")
        return {"tree": _run_tree(root, uri), "result": result, "dying": dead,
                "writers": [r.data.tags[WRITTEN_BY] for r in trials]}
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)


def test_on_a_tracking_server_workers_write_the_trial_runs_and_the_tree_is_the_serial_one(serial, on_cluster):
    server = on_cluster[5]
    tree, statuses = server["tree"]
    assert tree == _run_tree(serial)[0] and "RUNNING" not in statuses
    writers = server["writers"]
    assert len(writers) == 5 and f"{socket.gethostname()}:{os.getpid()}" not in writers  # workers, not this process


def test_a_worker_that_dies_inside_its_trial_run_leaves_it_failed_and_one_finished(on_cluster):
    server = on_cluster[5]
    assert server["result"] == [_Result(0.5)]
    assert sorted(status for status, _, _ in server["dying"]) == ["FAILED", "FINISHED"]
    finished = [(writer, metrics) for status, writer, metrics in server["dying"] if status == "FINISHED"]
    assert finished[0][1] == {"accuracy": 0.5}  # the rank score is the stage's to add, not the worker's


def _malloc_trim_threshold(_job) -> str | None:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_workers_keep_glibc_s_adaptive_trim_threshold(on_cluster):
    """distributed's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in each worker (and in this process) by
    default, which made torch steps 1.6-1.8x slower; the stage's cluster must not."""
    parent, workers, after = on_cluster[4]
    assert workers == [parent, parent]
    assert after == parent


def _worker_wakeups(_job) -> tuple:
    from distributed import get_worker

    worker = get_worker()
    return ("profile" in worker.periodic_callbacks, worker._tick_interval,
            worker.periodic_callbacks["monitor"].callback_time, worker.memory_manager.memory_monitor_interval)


def test_workers_do_not_wake_every_few_milliseconds_beside_the_trial(on_cluster):
    """Dask's profiler (10 ms), event-loop tick (20 ms) and monitors (100 / 500 ms) took the GIL and a core
    from two busy one-thread workers: 6 % slower training (flows/dask_runner.QUIET_WORKERS)."""
    assert on_cluster[7] == [(False, 1.0, 5000, 1.0)] * 2


def _saturation(dask_scheduler) -> float:
    return dask_scheduler.WORKER_SATURATION


def test_a_one_thread_worker_holds_one_job_so_the_longest_first_order_holds(on_cluster):
    """At Dask's default worker-saturation (1.1) a one-thread worker takes two jobs at once, and the
    second waits there while another worker may be idle; trial mode submits longest first for nothing."""
    assert on_cluster[6]["saturation"] == 1.0


def test_two_dask_workers_give_the_serial_choice_scores_and_run_tree(serial, on_cluster):
    root = on_cluster[0]
    assert _selection(root)["method"] == _selection(serial)["method"]
    assert _without_clock(_selection(root)) == _without_clock(_selection(serial))
    tree, statuses = _run_tree(root)
    assert len(tree) == 5 and tree == _run_tree(serial)[0]
    assert "RUNNING" not in statuses


def test_a_worker_killed_mid_trial_is_run_again_and_nothing_changes(serial, on_cluster):
    _, root, marker, *_ = on_cluster
    assert marker.exists()  # a worker did die
    assert _without_clock(_selection(root)) == _without_clock(_selection(serial))
    tree, statuses = _run_tree(root)
    assert tree == _run_tree(serial)[0]  # every trial logged once: none lost, none twice
    assert "RUNNING" not in statuses


def _weights(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("model.safetensors"))}


def test_seeds_and_audit_candidates_on_workers_equal_the_local_run(on_cluster, tmp_path):
    """adapt's per-seed runs and the audit's candidates trained on workers: the same weights, the same
    per-epoch metrics in MLflow, the same evaluation and regret as in this process."""
    on_workers = on_cluster[3]
    local = _seed_project(tmp_path)
    _adapt_and_evaluate(local)
    for folder in (ADAPTED_MODEL, BASELINE_MODELS):
        weights = _weights(local / folder)
        assert len(weights) >= 2 and weights == _weights(on_workers / folder)
    evaluation = [json.loads((root / EVALUATION).read_text()) for root in (local, on_workers)]
    assert evaluation[0]["audit"]["candidates_trained"] == ["linear-probe"] or evaluation[0]["audit"]
    for key in ("models", "audit", "gain", "verdict"):
        assert evaluation[0].get(key) == evaluation[1].get(key), key
    metrics = []
    for root in (local, on_workers):
        client = MlflowClient(tracking_uri(root))
        exp = client.get_experiment_by_name("transferlab").experiment_id
        run = client.search_runs([exp], "tags.`transferlab.stage` = 'adapt'")[0]
        metrics.append({k: [m.value for m in client.get_metric_history(run.info.run_id, k)]
                        for k in run.data.metrics if not k.startswith(("time.", "epoch_seconds"))
                        and not k.endswith("epoch_seconds")})
    assert metrics[0] == metrics[1] and "seed-1.loss" in metrics[0]


@pytest.mark.parametrize("execution, message", [
    ({"runner": "dask", "n_workers": 0}, "execution.n_workers"),
    ({"runner": "ray"}, "execution.runner"),
    ({"runner": "local", "address": "tcp://10.0.0.5:8786"}, "execution: address is an existing Dask scheduler"),
    ({"runner": "dask", "address": "10.0.0.5:8786"}, "execution.address"),
    ({"runner": "dask", "workers": 2}, "unknown key 'execution.workers'"),
])
def test_execution_params_errors_name_the_key(execution, message):
    with pytest.raises(ConfigError, match=message):
        parse_params({"execution": execution})


def test_local_is_the_default_and_no_stage_goes_to_dask_without_jobs():
    params = parse_params({})
    assert params.execution.runner == "local"
    assert not any(dask_runner.uses_workers(n, params) for n in ("select", "adapt", "evaluate"))
    dask = parse_params({"execution": {"runner": "dask"}, "select": {"mode": "trial"}, "adapt": {"seeds": [0, 1]},
                         "evaluate": {"audit": True}})
    assert [dask_runner.uses_workers(n, dask) for n in ("prepare", "select", "adapt", "evaluate")] == \
        [False, True, True, True]


def test_a_second_cluster_in_the_same_process_keeps_dask_s_defaults():
    """The retry setting is set and taken back around each stage's cluster; taking it back must not take
    distributed's own defaults with it (a pipeline starts one cluster per stage in one process)."""
    import subprocess

    code = ("from flows.dask_runner import _cluster_config\nimport dask\n"
            "with _cluster_config(5):\n    inside = dask.config.get('distributed.scheduler.allowed-failures')\n"
            "print(inside, dask.config.get('distributed.comm.timeouts.connect'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.split() == ["5", "30s"]
