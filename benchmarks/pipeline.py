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
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = tempfile.mkdtemp(prefix="tl-prefect-")
    server_env = {**env(), "PREFECT_HOME": home}
    proc = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api"
    try:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise SystemExit("prefect server did not start within 2 minutes")
        os.environ["PREFECT_API_URL"] = url
        yield f"running `prefect server start` ({url})"
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--repeats", type=int, default=3, help="no-op dvc repro repetitions")
    parser.add_argument("--out", default=None, help="write the table into this markdown file (its own section)")
    parser.add_argument("--prefect-server", action="store_true",
                        help="run against a `prefect server start` instead of the flow's temporary server")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tl-bench-") as tmp, prefect_server(args.prefect_server) as server:
        project = make_project(Path(tmp) / "proj", yaml.safe_load(Path(args.params).read_text()))
        launched = time.time()
        flow_s = _timed([str(BIN / "transferlab"), "run"], project)
        rows = stage_times(project)
        noop = [_timed([str(BIN / "dvc"), "repro"], project) for _ in range(args.repeats)]

    work = sum(r["work_s"] for r in rows)
    overhead = 1 - work / flow_s
    # Where the overhead sits, from the stage runs' MLflow start and end times.
    # time.stage_s runs from the moment the flow task hands the stage over to the end of its
    # MLflow run, so a stage began at about end − stage_s.
    begun = [r["end"] - r["stage_s"] for r in rows]
    startup = begun[0] - launched
    in_stages = sum(r["stage_s"] - r["work_s"] for r in rows)
    between = sum(b - a["end"] for a, b in zip(rows, begun[1:]))
    shutdown = launched + flow_s - rows[-1]["end"]
    lines = [
        f"## Pipeline timing ({time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"`{Path(args.params).name}`, Prefect: {server})",
        "",
        "Command: `.venv/bin/python benchmarks/pipeline.py" + (" --prefect-server`" if args.prefect_server else "`"),
        "",
        "| stage | stage wall (s) | work (s) | overhead (s) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['stage_s']:.1f} | {r['work_s']:.1f} | {r['stage_s'] - r['work_s']:.1f} |")
    lines += [
        "",
        "| measure | value | target | ok |",
        "| --- | ---: | ---: | --- |",
        f"| `transferlab run` (Prefect flow, all stages), wall | {flow_s:.1f} s | < {TARGETS['pipeline_s']:.0f} s "
        f"| {'yes' if flow_s < TARGETS['pipeline_s'] else 'NO'} |",
        f"| no-op `dvc repro`, median of {args.repeats} | {statistics.median(noop):.2f} s | < {TARGETS['noop_repro_s']:.0f} s "
        f"| {'yes' if statistics.median(noop) < TARGETS['noop_repro_s'] else 'NO'} |",
        f"| work inside stages | {work:.1f} s | | |",
        f"| orchestration + tracking share (1 − work / wall) | {100 * overhead:.1f} % | < {100 * TARGETS['overhead_share']:.0f} % "
        f"| {'yes' if overhead < TARGETS['overhead_share'] else 'NO'} |",
        "",
        "Overhead by place: "
        f"start-up (interpreter, imports, Prefect server and flow run, until the first stage run opens) {startup:.1f} s; "
        f"inside stage runs but outside work (MLflow params/metrics/artifacts, model registration, file I/O) "
        f"{in_stages:.1f} s; between stages (DVC staleness check, hashing, dvc.lock, Prefect task runs) {between:.1f} s; "
        f"after the last stage (summary, Prefect artifact, shutdown) {shutdown:.1f} s.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        from benchmarks.results import write_section

        write_section(Path(args.out), "pipeline-prefect-server" if args.prefect_server else "pipeline", text)


if __name__ == "__main__":
    main()
