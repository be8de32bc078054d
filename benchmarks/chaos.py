"""A hostile user, measured: bad inputs, kill -9 at random moments, two runs at once.

Every case runs the real commands (``transferlab run``, ``dvc repro``) in a fresh tiny project (git +
DVC + MLflow, as a user's; the e2e tests' configuration) and prints one row: the case, the exit code,
the lines printed on stderr, what was left behind (files, ``.tmp-*`` leftovers, MLflow runs still
RUNNING, model versions), and whether the case met its goal.

- **Bad inputs** (``benchmarks/chaos_inputs.py``): one wrong thing each; goal: a non-zero exit, one
  ``error:`` line, no traceback, nothing written, no MLflow run or model version, params.yaml unchanged.
- **Kills**: a clean run's stage timeline first, then ``kill -9`` of the run's process group at a
  seeded random moment spread over the stages, for ``transferlab run`` and ``dvc repro``; a kill
  the last quarter of each command's kills happen inside DVC's write of ``dvc.lock``, half-way
  through, by fault injection (``benchmarks/chaos_lock_kill``, on PYTHONPATH for those cases only). Then the same command again: goal: exit 0, the metrics of the
  uninterrupted run, no RUNNING run, no leftovers, every model version of a dead attempt tagged abandoned.
- **Concurrency**: a second ``transferlab run`` (and a ``dvc repro``) while one runs; goal: refused
  at once in one line naming the holder.

    python benchmarks/chaos.py [--part inputs kills concurrency] [--kills 20] [--seed 0] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.chaos_inputs import Case, cases  # noqa: E402
from benchmarks.results import machine, write_section  # noqa: E402
from tests.e2e.project import BIN, env, make_project  # noqa: E402

OUTPUTS = ("data/prepared", "models/source", "models/adapted", "models/baselines", "reports", "mlflow.db", "mlruns")
METRICS = ("method", "adapted_accuracy", "source_only_accuracy", "transfer_gain", "transfer_gain_ci", "verdict")
LEFTOVER = re.compile(r"^\..+\.(tmp|old)-\w+$")


@dataclass
class Row:
    part: str
    case: str
    code: int
    lines: int | str  # error: lines / all lines on stderr
    left: str
    running: int
    versions: str
    ok: bool
    note: str = ""


def mlflow_state(project: Path) -> tuple[int, int, int]:
    """(runs RUNNING, model versions, model versions tagged abandoned) in the project's store."""
    db = project / "mlflow.db"
    if not db.exists():
        return 0, 0, 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        running = con.execute("SELECT count(*) FROM runs WHERE status = 'RUNNING'").fetchone()[0]
        versions = con.execute("SELECT count(*) FROM model_versions").fetchone()[0]
        abandoned = con.execute("SELECT count(*) FROM model_version_tags "
                                "WHERE key = 'transferlab.abandoned'").fetchone()[0]
    return running, versions, abandoned


def leftovers(project: Path) -> list[str]:
    return sorted(str(p.relative_to(project)) for p in project.rglob(".*")
                  if LEFTOVER.match(p.name) and ".git" not in p.parts and ".dvc" not in p.parts)


def written(project: Path) -> list[str]:
    return [o for o in OUTPUTS if (project / o).exists() and (not (project / o).is_dir() or any((project / o).iterdir()))]


def command(args: list[str]) -> list[str]:
    return [str(BIN / args[0]), *args[1:]]


def run_input_case(case: Case, base: Path) -> Row:
    project = make_project(base / "p")
    case.setup(project)
    params_before = (project / "params.yaml").read_text()
    proc = subprocess.run(command(case.command), cwd=project, env=env(), capture_output=True, text=True,
                          timeout=900)
    if case.expect == "recovered":
        return _recovered_row(case.name, proc, project)
    return _refused_row("input", case.name, proc, project, params_before)


def _refused_row(part: str, name: str, proc: subprocess.CompletedProcess, project: Path, params_before: str,
                 allowed: tuple[str, ...] = ()) -> Row:
    """The goal of a bad input: non-zero, one error line, no traceback, nothing written (but ``allowed``
    outputs a good run left before), no MLflow run or version, params.yaml as it was."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("error:", "ERROR"))]
    running, versions, _ = mlflow_state(project)
    left = [o for o in written(project) if o not in allowed] + leftovers(project)
    unchanged = (project / "params.yaml").read_text() == params_before
    ok = (proc.returncode != 0 and len(errors) == 1 and "Traceback" not in proc.stderr and not left
          and (versions == 0 or allowed) and running == 0 and unchanged)
    note = (errors[0] if len(errors) == 1 else " / ".join(lines[-2:]) or "(nothing printed)")[:160]
    note += "" if unchanged else " [params.yaml changed]"
    return Row(part, name, proc.returncode, f"{len(errors)} / {len(lines)}", ", ".join(left) or "-", running,
               str(versions), ok, note)


def _recovered_row(name: str, proc: subprocess.CompletedProcess, project: Path) -> Row:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    notes = [line for line in lines if line.startswith("note:")]
    running, versions, _ = mlflow_state(project)
    ok = proc.returncode == 0 and len(notes) >= 1 and running == 0 and not leftovers(project)
    return Row("input", name, proc.returncode, f"{len(notes)} note(s) / {len(lines)}", "-", running,
               str(versions), ok, (notes[0] if notes else (lines or ["?"])[-1])[:160])


@contextlib.contextmanager
def mounted(folder: Path, size_mb: int | None = None, read_only_of: Path | None = None):
    """A tmpfs of ``size_mb`` at ``folder``, or ``read_only_of`` bind-mounted read-only there (root
    writes through permissions, not through a read-only mount)."""
    folder.mkdir(parents=True, exist_ok=True)
    if read_only_of is None:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(folder)], check=True)
    else:
        subprocess.run(["mount", "--bind", str(read_only_of), str(folder)], check=True)
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def full_disk_case(base: Path) -> Row:
    """The project's disk full once prepare starts writing: a 64 MB tmpfs left with 200 KB free."""
    with mounted(base / "disk", size_mb=64) as disk:
        project = make_project(disk / "p")
        free = shutil.disk_usage(disk).free
        with open(disk / "filler", "wb") as handle:
            handle.truncate(0)
            handle.write(b"\0" * max(free - 200 * 1024, 0))
        params_before = (project / "params.yaml").read_text()
        proc = subprocess.run(command(["transferlab", "run"]), cwd=project, env=env(), capture_output=True,
                              text=True, timeout=900)
        (disk / "filler").unlink()
        return _refused_row("input", "full disk (200 KB free)", proc, project, params_before)


def readonly_reports_case(base: Path) -> Row:
    """After a good run, reports/ read-only and evaluate's param changed: the run fails in one line and
    what the good run left in reports/ is untouched."""
    project = make_project(base / "ro")
    subprocess.run(command(["transferlab", "run"]), cwd=project, env=env(), capture_output=True, check=True)
    raw = (project / "params.yaml").read_text().replace("bootstrap: 200", "bootstrap: 300")
    (project / "params.yaml").write_text(raw)
    before = {p: p.read_bytes() for p in (project / "reports").rglob("*") if p.is_file()}
    with mounted(base / "ro-view", read_only_of=project / "reports"):
        subprocess.run(["mount", "--bind", str(base / "ro-view"), str(project / "reports")], check=True)
        try:
            proc = subprocess.run(command(["transferlab", "run"]), cwd=project, env=env(), capture_output=True,
                                  text=True, timeout=900)
        finally:
            subprocess.run(["umount", "-l", str(project / "reports")], check=False)
    after = {p: p.read_bytes() for p in (project / "reports").rglob("*") if p.is_file()}
    row = _refused_row("input", "read-only reports/ after a good run", proc, project, raw,
                       allowed=tuple(OUTPUTS))
    row.ok = row.ok and after == before
    row.note += "" if after == before else " [reports changed]"
    return row


def part_inputs(names: list[str] | None) -> list[Row]:
    rows = []
    special = {"full disk (200 KB free)": full_disk_case, "read-only reports/ after a good run": readonly_reports_case}
    runs = [(c.name, lambda base, c=c: run_input_case(c, base)) for c in cases()] + list(special.items())
    for name, run_case in runs:
        if names and name not in names:
            continue
        with tempfile.TemporaryDirectory(prefix="tl-chaos-") as tmp:
            row = run_case(Path(tmp))
        print(f"{row.case}: exit {row.code}, {row.lines} line(s), left {row.left}, ok {row.ok}: {row.note}",
              file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def metrics(project: Path) -> dict:
    report = project / "reports" / "evaluation.json"
    if not report.exists():
        return {}
    data = json.loads(report.read_text())
    return {k: data.get(k) for k in METRICS}


def timeline(project: Path, args: list[str]) -> tuple[dict, list[tuple[str, float]], float]:
    """A clean run: its metrics, when each stage's MLflow run started (s after launch), its length."""
    started = time.time()
    subprocess.run(command(args), cwd=project, env=env(), capture_output=True, text=True, check=True)
    with sqlite3.connect(f"file:{project / 'mlflow.db'}?mode=ro", uri=True) as con:
        rows = con.execute("SELECT r.name, r.start_time FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                           "WHERE t.key = 'transferlab.role' AND t.value = 'stage' ORDER BY r.start_time").fetchall()
    return metrics(project), [(n, s / 1000 - started) for n, s in rows], time.time() - started


INJECT = Path(__file__).resolve().parent / "chaos_lock_kill"


def kill_at(project: Path, args: list[str], after_s: float, lock_write: int = 0) -> int:
    """Start ``args``, kill -9 its whole process group after ``after_s``, or (``lock_write`` N) from
    inside its N-th write of dvc.lock, half-way through; the exit code it died with."""
    run_env = env()
    if lock_write:
        run_env |= {"PYTHONPATH": os.pathsep.join(filter(None, [str(INJECT), run_env.get("PYTHONPATH")])),
                    "CHAOS_KILL_AT_LOCK_WRITE": str(lock_write)}
    proc = subprocess.Popen(command(args), cwd=project, env=run_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        return proc.wait(timeout=after_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


def _stage_at(stages: list[tuple[str, float]], t: float) -> str:
    current = "start-up"
    for name, start in stages:
        if start <= t:
            current = name
    return current


def part_kills(n: int, seed: int, base: Path) -> list[Row]:
    rows, rng = [], random.Random(seed)
    for args in (["transferlab", "run"], ["dvc", "repro"]):
        reference = make_project(base / f"ref-{args[0]}")
        expected, stages, length = timeline(reference, args)
        print(f"{' '.join(args)}: clean run {length:.0f} s, stages at "
              + ", ".join(f"{s} {t:.0f}" for s, t in stages), file=sys.stderr, flush=True)
        for i in range(n // 2):
            project = make_project(base / f"kill-{args[0]}-{i}")
            # The last kills of each command (a quarter, at least one): inside DVC's write of dvc.lock.
            lock_write = rng.randint(1, len(stages)) if i >= n // 2 - max(1, n // 8) else 0
            t = rng.uniform(0.05, 0.98) * length
            code = kill_at(project, args, 3 * length if lock_write else t, lock_write)
            where = (f"{t:.0f} s ({_stage_at(stages, t)})" if not lock_write else
                     f"half-way through dvc.lock write {lock_write} of {len(stages)}")
            lock = project / "dvc.lock"
            if lock_write and (not lock.exists() or not lock.read_text().strip()):
                where += ", which it left empty"
            running_dead, _, _ = mlflow_state(project)
            rerun = subprocess.run(command(args), cwd=project, env=env(), capture_output=True, text=True)
            running, versions, abandoned = mlflow_state(project)
            same = metrics(project) == expected
            left = leftovers(project)
            fired = not lock_write or code == -signal.SIGKILL
            ok = rerun.returncode == 0 and same and running == 0 and not left and fired
            note = f"killed at {where}; RUNNING before rerun {running_dead}"
            if not fired:
                note += f"; the lock-write kill did not happen (exit {code})"
            if rerun.returncode != 0:
                note += f"; rerun: {(rerun.stderr.strip().splitlines() or ['?'])[-1][:120]}"
            rows.append(Row(f"kill {args[0]}", f"#{i + 1}", rerun.returncode, len(rerun.stderr.splitlines()),
                            ", ".join(left) or "-", running, f"{versions} ({abandoned} abandoned)", ok,
                            note + ("" if same else "; metrics differ")))
            print(f"{args[0]} kill {i + 1}: {note}, ok {ok}", file=sys.stderr, flush=True)
    return rows


def part_concurrency(base: Path) -> list[Row]:
    rows = []
    for second in (["transferlab", "run"], ["dvc", "repro"]):
        project = make_project(base / f"conc-{second[0]}")
        first = subprocess.Popen(command(["transferlab", "run"]), cwd=project, env=env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(20)  # past start-up: the first run holds the project
        t0 = time.perf_counter()
        proc = subprocess.run(command(second), cwd=project, env=env(), capture_output=True, text=True)
        took = time.perf_counter() - t0
        first.wait()
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        refused = [line for line in lines if "another run holds" in line]
        ok = proc.returncode != 0 and len(refused) == 1 and "Traceback" not in proc.stderr and first.returncode == 0
        rows.append(Row("concurrent", f"{' '.join(second)} during transferlab run", proc.returncode, len(lines),
                        "-", mlflow_state(project)[0], "-", ok,
                        f"answered in {took:.1f} s: " + (refused[0] if refused else (lines or ['?'])[-1])[:150]))
    return rows


PART_TITLES = {"inputs": "bad inputs", "kills": "kills", "concurrency": "concurrent runs"}


def table(rows: list[Row], args, seconds: float) -> str:
    section = "" if args.section == "chaos" else f" --section {args.section}"
    lines = [f"## Chaos: {', '.join(PART_TITLES[p] for p in args.part)} (`benchmarks/chaos.py`)", "",
             f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/chaos.py --part {' '.join(args.part)} "
             f"--kills {args.kills} --seed {args.seed}{section} --out benchmarks/RESULTS.md`. "
             f"Whole run: {seconds / 60:.1f} min.",
             "", "| part | case | exit | error lines / all stderr lines | left behind | RUNNING runs | model versions | goal met | what it said / note |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.part} | {r.case} | {r.code} | {r.lines} | {r.left} | {r.running} | {r.versions} | "
                     f"{'yes' if r.ok else '**no**'} | {r.note.replace('|', '/')} |")
    for part in dict.fromkeys(r.part for r in rows):
        mine = [r for r in rows if r.part == part]
        lines.append(f"\n{part}: {sum(r.ok for r in mine)} of {len(mine)} met the goal.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", nargs="+", default=["inputs", "kills", "concurrency"],
                   choices=["inputs", "kills", "concurrency"])
    p.add_argument("--cases", nargs="+", help="inputs: only these case names")
    p.add_argument("--kills", type=int, default=20, help="kill -9 runs in all (half per command)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path)
    p.add_argument("--section", default="chaos", help="RESULTS.md section to write")
    args = p.parse_args(argv)
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="tl-chaos-") as tmp:
        if "inputs" in args.part:
            rows += part_inputs(args.cases)
        if "kills" in args.part:
            rows += part_kills(args.kills, args.seed, Path(tmp))
        if "concurrency" in args.part:
            rows += part_concurrency(Path(tmp))
    md = table(rows, args, time.perf_counter() - started)
    print(md)
    if args.out:
        write_section(args.out, args.section, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
