"""Time the default pipeline stage by stage, a no-op `dvc repro`, and the share of wall time that is
orchestration and tracking rather than work.

    .venv/bin/python benchmarks/pipeline.py [--params params.yaml] [--out benchmarks/RESULTS.md]

Runs in a fresh temporary copy of the project (git + DVC initialised), so nothing here is touched.
"Work" is what each stage spends inside its core calls (loading and splitting data, validating,
training, measuring, scoring: see tasks/timing.py); everything else (interpreter and library
start-up, DVC, Prefect, MLflow logging and model registration) counts as overhead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import machine, write_section  # noqa: E402
from flows.local_server import answers_health, free_port  # noqa: E402
from tests.e2e.project import BIN, env, make_project  # noqa: E402

TARGETS = {"pipeline_s": 300.0, "noop_repro_s": 5.0, "overhead_share": 0.15}


def _timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def stage_times(project: Path) -> list[dict]:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    client = MlflowClient()
    exp = client.get_experiment_by_name("transferlab")
    rows = []
    for run in client.search_runs([exp.experiment_id], "tags.`transferlab.role` = 'stage'",
                                  order_by=["attributes.start_time ASC"]):
        m = run.data.metrics
        rows.append({"stage": run.data.tags["transferlab.stage"], "stage_s": m.get("time.stage_s", float("nan")),
                     "work_s": m.get("time.work_s", float("nan")),
                     "start": run.info.start_time / 1000, "end": (run.info.end_time or 0) / 1000})
    return rows


@contextmanager
def prefect_server(enabled: bool) -> Iterator[str]:
    """A `prefect server start` on 127.0.0.1 for the run (PREFECT_API_URL set), or the temporary one."""
    if not enabled:
        yield "temporary server started by the flow"
        return
    port = free_port()
    home = tempfile.mkdtemp(prefix="tl-prefect-")
    server_env = {**env(), "PREFECT_HOME": home}
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api"
    try:
        for _ in range(240):
            if answers_health(url):
                break
            time.sleep(0.5)
        else:
            raise SystemExit("prefect server did not start within 2 minutes")
        os.environ["PREFECT_API_URL"] = url
        yield f"running `prefect server start` ({url})"
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        proc.terminate()
        proc.wait(timeout=30)


LIBRARIES = "import numpy, scipy.stats, sklearn.linear_model, sklearn.manifold, torch, torchvision, matplotlib.figure"


def library_import_s(repeats: int = 3) -> float:
    """What any script that trains and plots here pays before its first line of work (best of
    ``repeats``): the import of the compute libraries. Not orchestration or tracking."""
    return min(_timed([str(BIN / "python"), "-c", LIBRARIES], ROOT) for _ in range(repeats))


def measure_run(project: Path, args: list[str]) -> dict:
    """Wall time of one `transferlab run`, its stages' work, and where the rest went (from the
    stage runs' MLflow end times and their time.stage_s, which starts when the flow task hands
    the stage over)."""
    launched = time.time()
    wall = _timed([str(BIN / "transferlab"), "run", *args], project)
    rows = [r for r in stage_times(project) if r["start"] >= launched]
    begun = [r["end"] - r["stage_s"] for r in rows]
    return {"wall": wall, "rows": rows, "work": sum(r["work_s"] for r in rows),
            "startup": begun[0] - launched, "in_stages": sum(r["stage_s"] - r["work_s"] for r in rows),
            "between": sum(b - a["end"] for a, b in zip(rows, begun[1:])),
            "shutdown": launched + wall - rows[-1]["end"]}


def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--repeats", type=int, default=3, help="no-op dvc repro repetitions")
    parser.add_argument("--rounds", type=int, default=3,
                        help="fresh projects, each timed for a first and a next run (the median is reported)")
    parser.add_argument("--out", default=None, help="write the table into this markdown file (its own section)")
    parser.add_argument("--prefect-server", action="store_true",
                        help="run against a `prefect server start` instead of the flow's temporary server")
    args = parser.parse_args()

    imports = library_import_s()
    colds, warms, noop = [], [], []
    with tempfile.TemporaryDirectory(prefix="tl-bench-") as tmp, prefect_server(args.prefect_server) as server:
        for round_ in range(args.rounds):
            project = make_project(Path(tmp) / f"proj{round_}", yaml.safe_load(Path(args.params).read_text()))
            colds.append(measure_run(project, []))
            if round_ == 0:
                noop = [_timed([str(BIN / "dvc"), "repro"], project) for _ in range(args.repeats)]
            # Every stage depends on `seed`: changing it re-runs the whole DAG in a project whose MLflow
            # database and caches already exist, which is what every run after the first looks like.
            warms.append(measure_run(project, ["--set", "seed=1"]))

    def share(r: dict, minus: float = 0.0) -> float:
        return (r["wall"] - r["work"] - minus) / r["wall"]

    def median_run(runs: list[dict]) -> dict:
        return sorted(runs, key=lambda r: share(r, imports))[len(runs) // 2]

    def spread(runs: list[dict]) -> str:
        values = sorted(100 * share(r, imports) for r in runs)
        return f" [{values[0]:.1f}–{values[-1]:.1f}]" if len(values) > 1 else ""

    cold, warm = median_run(colds), median_run(warms)

    lines = [
        f"## Pipeline timing ({time.strftime('%Y-%m-%d')}, `{Path(args.params).name}`, Prefect: {server})",
        "",
        f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/pipeline.py"
        + (" --prefect-server`." if args.prefect_server else "`."),
        "First run = `transferlab run` in a fresh project (creates the MLflow database); "
        "next run = `transferlab run --set seed=1` in the same project (every stage re-runs). "
        "Work = time inside each stage's core calls (data, validation, training, measuring, scoring). "
        f"Library imports = `python -c \"{LIBRARIES}\"` ({imports:.1f} s, best of 3): paid by any "
        "script that trains, so not counted as orchestration. "
        f"{args.rounds} fresh projects, each timed for a first and a next run: the tables show the run with the "
        "median overhead share; [min–max] next to a share is its range over the rounds.",
        "",
        "| stage | first run: wall (s) | work (s) | next run: wall (s) | work (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for a, b in zip(cold["rows"], warm["rows"]):
        lines.append(f"| {a['stage']} | {a['stage_s']:.1f} | {a['work_s']:.1f} | {b['stage_s']:.1f} | {b['work_s']:.1f} |")
    lines += ["", "| measure | first run | next run | target |", "| --- | ---: | ---: | --- |"]

    median_noop = statistics.median(noop)
    lines += [
        f"| `transferlab run` wall | {cold['wall']:.1f} s ({_ok(cold['wall'] < TARGETS['pipeline_s'])}) "
        f"| {warm['wall']:.1f} s ({_ok(warm['wall'] < TARGETS['pipeline_s'])}) | < {TARGETS['pipeline_s']:.0f} s |",
        f"| work inside stages | {cold['work']:.1f} s | {warm['work']:.1f} s | |",
        f"| overhead incl. library imports (1 − work / wall) | {100 * share(cold):.1f} % | {100 * share(warm):.1f} % | |",
        f"| orchestration + tracking (1 − (work + library imports) / wall) | {100 * share(cold, imports):.1f} % "
        f"({_ok(share(cold, imports) < TARGETS['overhead_share'])}){spread(colds)} | {100 * share(warm, imports):.1f} % "
        f"({_ok(share(warm, imports) < TARGETS['overhead_share'])}){spread(warms)} | < {100 * TARGETS['overhead_share']:.0f} % |",
        f"| no-op `dvc repro`, median of {args.repeats} | {median_noop:.2f} s ({_ok(median_noop < TARGETS['noop_repro_s'])}) "
        f"| | < {TARGETS['noop_repro_s']:.0f} s |",
        "",
    ]
    for label, r in (("first run", cold), ("next run", warm)):
        lines.append(
            f"Overhead by place, {label}: start-up (interpreter, imports, Prefect server and flow run, until the "
            f"first stage starts) {r['startup']:.1f} s; inside stages but outside work (MLflow logging, model "
            f"export and registration, file I/O) {r['in_stages']:.1f} s; between stages (DVC staleness check, "
            f"hashing, dvc.lock, Prefect task runs) {r['between']:.1f} s; after the last stage (summary, Prefect "
            f"artifact, shutdown) {r['shutdown']:.1f} s.")
    lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        write_section(Path(args.out), "pipeline-prefect-server" if args.prefect_server else "pipeline", text)


if __name__ == "__main__":
    main()
