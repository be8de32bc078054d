"""Past one process: trial-mode selection on Dask workers against today's serial loop and threads.

    .venv/bin/python benchmarks/scale.py [--part dask|ddp|all] [--threads 1] [--n-source 6000]
                                         [--epochs 4] [--steps 40] [--noop-tasks 40] [--repeats 1]
                                         [--out benchmarks/RESULTS.md]

The scenario is digits.py --standard's MNIST → USPS (LeNet, 10 target labels per class, seed 0),
shrunk so that the serial selection takes a few minutes: a stratified ``--n-source`` MNIST images,
the whole USPS train split, a short pretraining, and 8 arms (eight methods) pruned by successive
halving (η 2: 8 trials, then 4, then 2) with every trial at most ``--epochs × --steps`` steps
(``--epochs 8 --steps 250`` is digits.py --standard's adaptation length). The same
selection runs five ways, every one with torch at one thread per process and the same seeds:
serial (a loop), ``select.workers: 2`` threads, and Dask LocalClusters of 1 and 2 worker processes
(one thread each) through prefect-dask, trials shipped as file references to a project folder
written here, their training states between rounds as files in it. Choices and metrics must be identical (asserted; only wall-clock seconds may differ).

The serial loop and the 2-worker cluster run ``--repeats`` times each, in turn on the warm
cluster, so that a slow minute of the machine falls on both; the median run of each is compared.

Also measured: the 8-trial first round alone on the 2-worker cluster; the overhead per submitted
task (``--noop-tasks`` no-op Prefect tasks on that cluster: wall time / tasks); and the wall time a
16-worker cluster would take, predicted as Σ over rounds of the makespan of that round's trials over
W workers (longest trial first onto the least-loaded worker), each trial costing its serial
runtime plus the measured per-task overhead; the same formula for W = 2 is printed beside the
measurement as a check of the prediction, and with no overhead at all it is the bound the halving
schedule sets: a round cannot end before its longest trial, whatever the runner.

``--part ddp`` runs ``benchmarks/scale_ddp.py``'s ``main(argv)`` when that file exists (DDP
across processes is a separate benchmark).
"""

from __future__ import annotations

import argparse
import heapq
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
START_LOAD = os.getloadavg()[0]  # read before this run adds its own load
sys.path.insert(0, str(ROOT))

from benchmarks.digits import load, make_data  # noqa: E402
from benchmarks.results import machine, write_section  # noqa: E402
from flows import dask_runner  # noqa: E402
from tasks.data_files import adaptation_data  # noqa: E402
from tasks.jobs import ProjectRef, serial_map, shipping  # noqa: E402
from tasks.paths import SOURCE_MODEL  # noqa: E402
from tasks.select import thread_map  # noqa: E402
from tests.tasks.blob_project import write_prepared  # noqa: E402
from transferlab.config import ExecutionParams  # noqa: E402
from transferlab.models import ModelSpec, build_model, load_model  # noqa: E402
from transferlab.selection import SelectionConfig, select_by_trials  # noqa: E402
from transferlab.training import TrainSettings, train_classifier  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
ARMS = ["source-only", "finetune", "target-only", "dann", "dan", "deep-coral", "mcc", "cdan"]
GOALS = {"speedup_2_workers": 1.7, "overhead_per_task_s": 0.5}


def write_project(root: Path, n_source: int, seed: int = 0) -> None:
    """A project folder as prepare + pretrain leave it (splits with their pixels, the source model)."""
    data = make_data(load("mnist", DATA, "train"), load("usps", DATA, "train"), 10, n_source, None, seed)
    pretrain = TrainSettings(epochs=2, batch_size=64, lr=1e-3, patience=2, max_steps_per_epoch=150, seed=seed)
    model = train_classifier(build_model(ModelSpec(arch="lenet", image_size=28, num_classes=10), seed=seed),
                             data.source_train, data.source_val, pretrain).model
    write_prepared(root, data, model, labels_per_class=10, kind="benchmark")


class Timed:
    """A map_fn wrapper that records each round's wall time."""

    def __init__(self, map_fn):
        self.map_fn, self.rounds = map_fn, []

    def __call__(self, fn, jobs):
        start = time.perf_counter()
        out = self.map_fn(fn, jobs)
        self.rounds.append((len(jobs), time.perf_counter() - start))
        return out


def selection(root: Path, settings: TrainSettings, map_fn) -> tuple[dict, float, list]:
    timed = Timed(map_fn)
    start = time.perf_counter()
    chosen = select_by_trials(load_model(root / SOURCE_MODEL), adaptation_data(root), settings,
                              SelectionConfig(mode="trial", candidates=ARMS, search={}, eta=2,
                                              budget_fraction=0.25, seed=0), map_fn=timed)
    return chosen.to_dict(), time.perf_counter() - start, timed.rounds


def comparable(selection: dict) -> str:
    """The selection without wall-clock seconds: what must not depend on the runner."""
    out = json.loads(json.dumps(selection))
    for trial in out["trials"]:
        trial.pop("runtime_s")
    out["cost"].pop("runtime_s")
    return json.dumps(out, sort_keys=True)


def _noop(job):
    return job


def _warm(root: str) -> int:
    """What the serial process has done before its timer starts, done on a worker: import the trial code,
    read the project, one backward pass and an optimiser (torch imports torch._dynamo on the first
    optimiser it builds: 2.7 s here, profiled, which a worker's first trial would otherwise pay).
    Start-up, not trial time."""
    import transferlab.selection.trials  # noqa: F401 - with the methods and validators it imports

    model = load_model(Path(root) / SOURCE_MODEL)
    x = torch.from_numpy(adaptation_data(Path(root)).source_train.x[:64])
    torch.nn.functional.cross_entropy(model(x), torch.zeros(64, dtype=torch.long)).backward()
    torch.optim.Adam(model.parameters())
    return os.getpid()


def warming(settings: TrainSettings) -> TrainSettings:
    """A selection of two steps per epoch: every code path of the timed one (each method, each validator's
    imports), at no length. Each runner does one before its clock starts."""
    return settings.model_copy(update={"epochs": 1, "max_steps_per_epoch": 2, "min_steps_per_epoch": 1})


def on_cluster(root: Path, settings: TrainSettings, workers: int, noop_tasks: int, repeats: int = 1,
               before_each: Callable[[], None] | None = None) -> dict:
    """Start a LocalCluster of ``workers`` processes; the selection on it ``repeats`` times (each after
    ``before_each``, so that another runner's repeats interleave with these); the no-op overhead.
    Cluster start-up is timed apart from the work. The run of median wall time is the one reported."""
    started = time.perf_counter()

    def body(runner):
        ready = time.perf_counter() - started
        ref = ProjectRef.of(root)
        from prefect.context import FlowRunContext

        runner.map(_noop, list(range(workers)))  # every worker up and its Prefect client connected
        warmed = FlowRunContext.get().task_runner.client.run(_warm, str(root))  # on every worker, whichever the scheduler picks for a task
        assert len(warmed) == workers, warmed
        warm = time.perf_counter() - started
        shipped = shipping(runner, ref, root / "models" / f".select-jobs-{workers}")  # training states as files
        selection(root, warming(settings), shipped)  # untimed, as the serial process's warm-up run
        result = {"startup_s": warm, "cluster_s": ready, "runs": []}
        for _ in range(repeats):
            if before_each is not None:
                before_each()
            result["runs"].append(selection(root, settings, shipped))
        result["selection"], result["wall_s"], result["rounds"] = median_run(result["runs"])
        if noop_tasks:
            t0 = time.perf_counter()
            runner.map(_noop, list(range(noop_tasks)))
            result["overhead_s"] = (time.perf_counter() - t0) / noop_tasks
        return result
    return dask_runner.on_dask(ExecutionParams(runner="dask", n_workers=workers), body,
                               flow_name=f"scale benchmark ({workers} workers)")


def median_run(runs: list[tuple[dict, float, list]]) -> tuple[dict, float, list]:
    """The run of median wall time (the lower median for an even count)."""
    return sorted(runs, key=lambda run: run[1])[(len(runs) - 1) // 2]


def predicted(trial_seconds: list[list[float]], workers: int, overhead: float) -> float:
    """Σ over rounds of the makespan of the round's trials (each its serial runtime + overhead) placed
    longest first onto the least-loaded of ``workers`` workers."""
    total = 0.0
    for round_ in trial_seconds:
        loads = [0.0] * workers
        for cost in sorted(round_, reverse=True):
            heapq.heapreplace(loads, loads[0] + cost + overhead)
        total += max(loads)
    return total


def run_dask(args) -> str:
    torch.set_num_threads(args.threads)
    settings = TrainSettings(epochs=args.epochs, batch_size=64, lr=1e-3, patience=args.epochs,
                             max_steps_per_epoch=args.steps, seed=0)
    with tempfile.TemporaryDirectory(prefix="transferlab-scale-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        write_project(root, args.n_source)
        print(f"project written in {time.perf_counter() - t0:.0f} s", flush=True)
        selection(root, warming(settings), serial_map)  # untimed: the first run of a process imports and
        # allocates what later runs reuse (measured: a process's first selection 11 % slower than its next)
        serial_runs: list[tuple[dict, float, list]] = []

        def serial_once() -> None:
            serial_runs.append(selection(root, settings, serial_map))
            print(f"serial: {serial_runs[-1][1]:.1f} s, chose {serial_runs[-1][0]['method']}", flush=True)
        threads, threads_s, _ = selection(root, settings, thread_map(2))
        print(f"threads: {threads_s:.1f} s", flush=True)
        one = on_cluster(root, settings, 1, 0)
        print(f"dask 1: {one['wall_s']:.1f} s", flush=True)
        two = on_cluster(root, settings, 2, args.noop_tasks, args.repeats, before_each=serial_once)
        print("dask 2: " + ", ".join(f"{run[1]:.1f} s" for run in two["runs"]), flush=True)
    serial, serial_s, serial_rounds = median_run(serial_runs)
    two["all_s"], serial_all = [run[1] for run in two["runs"]], [run[1] for run in serial_runs]
    two["repeats_same"] = all(comparable(run[0]) == comparable(serial) for run in two["runs"] + serial_runs)
    same = {name: comparable(s) == comparable(serial) for name, s in
            (("threads", threads), ("dask 1", one["selection"]), ("dask 2", two["selection"]))}
    print("identical to serial:", same, flush=True)
    per_round: dict[int, list[float]] = {}
    for trial in serial["trials"]:
        per_round.setdefault(trial["round"], []).append(trial["runtime_s"])
    trial_seconds = [per_round[r] for r in sorted(per_round)]
    overhead = two["overhead_s"]
    pred = {w: predicted(trial_seconds, w, overhead) for w in (1, 2, 16)}
    pred["bound 2"] = predicted(trial_seconds, 2, 0.0)
    text = table(args, serial_s, threads, threads_s, one, two, serial_rounds, same, trial_seconds, pred, serial,
                 serial_all)
    print(text)
    # Dask must reproduce the serial run exactly; today's threads are reported, not asserted (they did not).
    assert same["dask 1"] and same["dask 2"] and two["repeats_same"], f"a Dask runner changed the selection: {same}"
    return text


def table(args, serial_s, threads, threads_s, one, two, serial_rounds, same, trial_seconds, pred, serial,
          serial_all) -> str:
    n_trials = sum(len(r) for r in trial_seconds)
    first_round = two["rounds"][0]
    rows = [
        ("serial loop (today, select.workers 1)", serial_s, "", "—"),
        ("2 threads (today, select.workers 2)", threads_s, "", "yes" if same["threads"] else "**no** (see below)"),
        ("Dask, 1 worker process", one["wall_s"], f"{one['startup_s']:.1f}", "yes" if same["dask 1"] else "**no**"),
        ("Dask, 2 worker processes", two["wall_s"], f"{two['startup_s']:.1f}", "yes" if same["dask 2"] else "**no**"),
    ]
    lines = [
        f"Machine: {machine()}; load average {START_LOAD:.1f} when the run started (other jobs on the cores "
        "would inflate the seconds and blur the ratios).", "",
        f"Command: `.venv/bin/python benchmarks/scale.py --part {args.part} --threads {args.threads} --n-source "
        f"{args.n_source} --epochs {args.epochs} --steps {args.steps} --noop-tasks {args.noop_tasks} "
        f"--repeats {args.repeats}`", "",
        f"Scenario: MNIST → USPS (digits.py's data: {args.n_source} stratified MNIST train images, the whole USPS "
        f"train split as target, 10 labels per class, seed 0), LeNet pretrained ≤ 2×150 steps; trial-mode "
        f"selection over {len(ARMS)} arms ({', '.join(ARMS)}), η 2, budget 25 % of the full sweep, trials ≤ "
        f"{args.epochs}×{args.steps} steps: {n_trials} trials in rounds of {', '.join(str(len(r)) for r in trial_seconds)}. "
        "Torch at 1 thread per process everywhere. Selection wall time excludes cluster start-up (given apart: "
        "scheduler + worker processes + their first task, then on each worker importing the trial code, reading the "
        "project, one backward pass and building an optimiser) and one untimed warm-up selection per runner "
        "(the same arms at two steps per epoch: a process's first selection imports and allocates what the later "
        "ones reuse).", "",
        "| runner | selection wall (s) | speed-up vs serial | cluster start-up (s) | same choice and metrics |",
        "|---|---|---|---|---|",
        *(f"| {name} | {wall:.1f} | {serial_s / wall:.2f}× | {start or '—'} | {ok} |" for name, wall, start, ok in rows),
        "",
        f"- Serial and Dask 2 workers ran {args.repeats} times each, in turn (serial, Dask, serial, Dask, ...; "
        "the cluster kept warm); their rows give the median run: serial "
        + ", ".join(f"{x:.1f}" for x in serial_all) + " s; Dask 2 workers " + ", ".join(f"{x:.1f}" for x in two["all_s"])
        + " s. Every repeat made the same choice with the same metrics.",
        f"- Chosen: serial `{serial['method']}`, threads `{threads['method']}`, Dask 1 `{one['selection']['method']}`, "
        f"Dask 2 `{two['selection']['method']}`; 'same' compares the whole selection JSON minus the `runtime_s` "
        "clock readings (every trial's scores, epochs trained, the cost).",
        f"- 8-trial job (round 1) on the 2-worker LocalCluster: {first_round[1]:.1f} s for {first_round[0]} trials "
        f"(serial: {serial_rounds[0][1]:.1f} s, **{serial_rounds[0][1] / first_round[1]:.2f}×**).",
        f"- Overhead per submitted task: {two['overhead_s']:.3f} s ({args.noop_tasks} no-op Prefect task runs on "
        f"the 2-worker cluster, wall / tasks; goal ≤ {GOALS['overhead_per_task_s']} s).",
        "- Per-trial cost (serial runtimes, s): " + "; ".join(
            f"round {i + 1}: " + ", ".join(f"{s:.1f}" for s in r) for i, r in enumerate(trial_seconds)) + ".",
        f"- Predicted selection wall time (Σ over rounds of the longest-first makespan over W workers, each trial "
        f"its serial runtime + {two['overhead_s']:.2f} s overhead): W=1 {pred[1]:.1f} s, W=2 {pred[2]:.1f} s "
        f"(measured {two['wall_s']:.1f} s), **W=16 {pred[16]:.1f} s** ({serial_s / pred[16]:.2f}× serial): with "
        f"8 arms no round has more trials than 16 workers, so each round costs its longest trial and the "
        "halving schedule (not the worker count) bounds the speed-up.",
        "- Round by round, serial → Dask 2 workers (s): " + "; ".join(
            f"round {i + 1}: {a[1]:.1f} → {b[1]:.1f} ({a[1] / b[1]:.2f}×)"
            for i, (a, b) in enumerate(zip(serial_rounds, two["rounds"]))) + ". Each round hands its trials over "
        "longest first: round 1 by the methods' step-cost prior (`relative_step_cost`, from "
        "benchmarks/method_step_time.py), later rounds by each arm's own seconds per epoch.",
        f"- The schedule's bound for 2 workers, from the serial process's trial times with no overhead at all: "
        f"{pred['bound 2']:.1f} s, {serial_s / pred['bound 2']:.2f}× serial. A runner passes it only where its "
        "processes run a trial faster than the serial process did.",
        f"- Goal: 2 Dask workers ≥ {GOALS['speedup_2_workers']}× serial: on the 8-trial job "
        f"{_met(serial_rounds[0][1] / first_round[1] >= GOALS['speedup_2_workers'])} "
        f"({serial_rounds[0][1] / first_round[1]:.2f}×), on the whole selection "
        f"{_met(serial_s / two['wall_s'] >= GOALS['speedup_2_workers'])} ({serial_s / two['wall_s']:.2f}×); "
        f"overhead ≤ {GOALS['overhead_per_task_s']} s: {_met(two['overhead_s'] <= GOALS['overhead_per_task_s'])}.",
    ]
    return "\n".join(lines) + "\n"


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def run_ddp(argv: list[str]) -> int:
    path = ROOT / "benchmarks" / "scale_ddp.py"
    if not path.exists():
        print("benchmarks/scale_ddp.py does not exist (yet): no DDP part to run", file=sys.stderr)
        return 1
    spec = importlib.util.spec_from_file_location("benchmarks.scale_ddp", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["dask", "ddp", "all"], default="dask")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-source", type=int, default=6000)
    parser.add_argument("--epochs", type=int, default=4, help="epochs of a trial run in full")
    parser.add_argument("--steps", type=int, default=40, help="max steps per epoch of a trial")
    parser.add_argument("--noop-tasks", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=1,
                        help="serial and 2-worker selections, run in turn this many times; the median is reported")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args, rest = parser.parse_known_args(argv)
    if args.part in ("dask", "all"):
        write_section(args.out, "scale-dask", "## Scaling out: trial-mode selection on Dask (benchmarks/scale.py)\n\n"
                      + run_dask(args))
    if args.part in ("ddp", "all"):
        return run_ddp(rest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
