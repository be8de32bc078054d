"""What the pipeline gains with its *default* params and default selection, on named scenarios.

Each scenario runs the real thing, ``transferlab run``, in a fresh temporary project (git + DVC +
MLflow, as a user's), with ``params.yaml`` as it is except the data section (and any ``--set``
overrides, to try a candidate default). The figures are read back from ``reports/evaluation.json``
and ``reports/selection.json``: the method the selection chose, source-only and adapted accuracy on
the held-out target test split, the transfer gain with its bootstrap CI, and the verdict.

Scenarios are split as the issue asks: ``TUNING`` may inform a default, ``HELDOUT`` only reports.

    python benchmarks/default_pipeline.py [--scenarios NAME ...] [--set key=value ...] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import machine, write_section  # noqa: E402
from tests.e2e.project import BIN, env, make_project  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def _mnist(split: str, *shifts: tuple[str, float]) -> dict:
    return {"name": "mnist", "path": str(DATA / "MNIST"), "split": split,
            "shifts": [{"name": n, "severity": s, "seed": 0} for n, s in shifts]}


TUNING = {
    "mnist→rotate 0.3": (_mnist("train"), _mnist("test", ("rotate", 0.3))),
    "mnist→invert+noise": (_mnist("train"), _mnist("test", ("invert", 1.0), ("noise", 0.8))),
}
HELDOUT = {
    "mnist→colour-background 0.7": (_mnist("train"), _mnist("test", ("colour-background", 0.7))),
}
GOALS = {"mnist→colour-background 0.7": 20.0}  # points of gain over source-only (issue 19)


def run_scenario(name: str, overrides: list[str]) -> dict:
    source, target = {**TUNING, **HELDOUT}[name]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["source"], params["data"]["target"] = source, target
    with tempfile.TemporaryDirectory(prefix="tl-default-") as tmp:
        project = make_project(Path(tmp) / "project", params)
        args = [str(BIN / "transferlab"), "run", *[a for o in overrides for a in ("--set", o)]]
        started = time.perf_counter()
        proc = subprocess.run(args, cwd=project, env=env(), capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{name}: transferlab run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        evaluation = json.loads((project / "reports" / "evaluation.json").read_text())
        selection = json.loads((project / "reports" / "selection.json").read_text())
    return {"scenario": name, "chosen": evaluation["chosen"], "why": selection.get("reasons", [""])[0],
            "source_only": 100 * evaluation["source_only_accuracy"], "adapted": 100 * evaluation["adapted_accuracy"],
            "gain": 100 * (evaluation["adapted_accuracy"] - evaluation["source_only_accuracy"]),
            "ci": [100 * v for v in evaluation["transfer_gain_ci"]], "verdict": evaluation["verdict"],
            "minutes": (time.perf_counter() - started) / 60}


def table(rows: list[dict], overrides: list[str], seconds: float) -> str:
    sets = "".join(f" --set {o}" for o in overrides)
    lines = [f"## The default pipeline's gain (`benchmarks/default_pipeline.py`{sets})", "",
             f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/default_pipeline.py --scenarios "
             + " ".join(f"'{r['scenario']}'" for r in rows) + sets + " --out benchmarks/RESULTS.md`. Whole run: "
             f"{seconds / 60:.1f} min.", "",
             "`transferlab run` in a fresh project with `params.yaml`'s defaults (seed 0) except the data"
             + (" and the overrides above" if overrides else "") + "; accuracy (%) on the target test split the "
             "pipeline holds out; gain = adapted − source-only, with evaluate's bootstrap CI of the transfer gain "
             "over the better baseline.", "",
             "| scenario | suite | chosen | source-only | adapted | gain | CI of transfer gain | verdict | goal | min |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        goal = GOALS.get(r["scenario"])
        met = "-" if goal is None else f"≥ {goal:.0f}: {'met' if r['gain'] >= goal else 'not met'}"
        suite = "tuning" if r["scenario"] in TUNING else "held-out"
        lines.append(f"| {r['scenario']} | {suite} | {r['chosen']} | {r['source_only']:.1f} | {r['adapted']:.1f} | "
                     f"{r['gain']:+.1f} | [{r['ci'][0]:+.1f}, {r['ci'][1]:+.1f}] | {r['verdict']} | {met} | "
                     f"{r['minutes']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", nargs="+", default=list(HELDOUT), choices=[*TUNING, *HELDOUT])
    p.add_argument("--set", dest="overrides", action="append", default=[], help="a params override, key=value")
    p.add_argument("--out", type=Path)
    p.add_argument("--section", default=None, help="RESULTS.md section (default: default-pipeline[-overrides])")
    args = p.parse_args(argv)
    started = time.perf_counter()
    rows = []
    for name in args.scenarios:
        rows.append(run_scenario(name, args.overrides))
        print(rows[-1], file=sys.stderr, flush=True)
    md = table(rows, args.overrides, time.perf_counter() - started)
    print(md)
    if args.out:
        section = args.section or "default-pipeline" + "".join(f"-{o}" for o in args.overrides)
        write_section(args.out, section, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
