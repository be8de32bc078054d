"""Per-step time of each adaptation method against dann's, side by side in one run.

Each method trains LeNet at 28×28 from the same source network on random source / target
batches through its own ``fit`` (augmentation, teacher updates and all), for ``--steps`` steps
with the checkpoint scorer on a 64-sample pool so that scoring is negligible; the time per step
is the median over ``--repeats`` runs, after an untimed 3-step warm-up run. A method that needs
target labels gets a labelled target set as large as the source; the others get none.
The label-free methods' bound (issue 19): at most 2.5× dann at the same batch.

``--methods all`` measures every method that trains on a target with the source's classes and
prints each one's declared ``relative_step_cost`` beside the measured ratio: that prior orders
trial mode's first round longest-first, and is refreshed from this table.

    python benchmarks/method_step_time.py [--threads 2] [--methods all] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import machine, write_section  # noqa: E402
from transferlab.data.types import Domain  # noqa: E402
from transferlab.errors import MethodRequirementError  # noqa: E402
from transferlab.methods import AdaptationData, get_method, list_methods  # noqa: E402
from transferlab.models import ModelSpec, build_model  # noqa: E402
from transferlab.training import TrainSettings  # noqa: E402

METHODS = ("dann", "cdan", "mcc", "adamatch", "mean-teacher")  # the label-free family of issue 19
CLASSES = tuple(str(i) for i in range(10))


def _domain(name: str, n: int, seed: int) -> Domain:
    rng = np.random.default_rng(seed)
    return Domain(name, rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n), CLASSES)


def step_ms(method: str, batch: int, steps: int, repeats: int, arch: str = "lenet") -> float:
    source = build_model(ModelSpec(arch=arch, image_size=28, num_classes=10), seed=0)
    labelled = _domain("l", 4096, 3) if get_method(method).needs_target_labels else None
    data = AdaptationData(_domain("s", 4096, 0), _domain("v", 64, 1), labelled, _domain("t", 64, 2))
    settings = TrainSettings(epochs=1, batch_size=batch, min_steps_per_epoch=steps, max_steps_per_epoch=steps)
    get_method(method)().fit(source, data, None, settings.model_copy(update={"max_steps_per_epoch": 3,
                                                                        "min_steps_per_epoch": 3}))  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        get_method(method)().fit(source, data, None, settings)
        times.append((time.perf_counter() - t0) / steps * 1000)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--methods", nargs="+", default=list(METHODS),
                   help="methods to time beside dann, or 'all' (every method that trains on the source's classes)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    methods = every_trainer() if args.methods == ["all"] else list(dict.fromkeys(["dann", *args.methods]))
    ms, archs = {}, {}
    for m in methods:
        try:
            get_method(m).check_model(build_model(ModelSpec(arch="lenet", image_size=28, num_classes=10)))
            archs[m] = "lenet"
        except MethodRequirementError:  # tent adapts normalisation layers, which LeNet lacks
            archs[m] = "lenet-bn"
        ms[m] = step_ms(m, args.batch, args.steps, args.repeats, archs[m])
    md = table(methods, ms, archs, args, argv)
    print(md)
    if args.out:
        write_section(args.out, "method-step-time-all" if args.methods == ["all"] else "method-step-time", md)
    return 0


def every_trainer() -> list[str]:
    """Every registered method that trains and takes a target with the source's classes (dann first)."""
    names = [m.name for m in list_methods() if m.trains and not m.new_task_only]
    return ["dann", *(n for n in names if n != "dann")]


def table(methods: list[str], ms: dict[str, float], archs: dict[str, str], args, argv) -> str:
    rows = [f"| {m}{' (on lenet-bn)' if archs[m] != 'lenet' else ''} | {ms[m]:.1f} | {ms[m] / ms['dann']:.2f}× "
            f"| {get_method(m).relative_step_cost:.2f}× |" for m in methods]
    shown = " ".join(argv if argv is not None else sys.argv[1:])
    return "\n".join([
        "## Per-step time of the adaptation methods against dann (`benchmarks/method_step_time.py`)", "",
        f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/method_step_time.py {shown}`. LeNet 28×28, "
        f"batch {args.batch} (each stream), {args.steps} steps per run through each method's own fit, "
        f"median of {args.repeats} runs, all in one process. 'declared': the method's `relative_step_cost`, "
        "the prior that orders trial mode's first round.", "",
        "| method | ms per step | against dann | declared |", "|---|---|---|---|", *rows, ""])


if __name__ == "__main__":
    raise SystemExit(main())
