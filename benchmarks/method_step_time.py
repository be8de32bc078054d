"""Per-step time of each label-free adaptation method against dann's, side by side in one run.

Each method trains LeNet at 28×28 from the same source network on random source / target
batches through its own ``fit`` (augmentation, teacher updates and all), for ``--steps`` steps
with the checkpoint scorer on a 64-sample pool so that scoring is negligible; the time per step
is the median over ``--repeats`` runs, after an untimed 3-step warm-up run.
The issue's bound: at most 2.5× dann at the same batch.

    python benchmarks/method_step_time.py [--threads 2] [--out benchmarks/RESULTS.md]
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
from transferlab.methods import AdaptationData, get_method  # noqa: E402
from transferlab.models import ModelSpec, build_model  # noqa: E402
from transferlab.training import TrainSettings  # noqa: E402

METHODS = ("dann", "cdan", "mcc", "adamatch", "mean-teacher")
CLASSES = tuple(str(i) for i in range(10))


def _domain(name: str, n: int, seed: int) -> Domain:
    rng = np.random.default_rng(seed)
    return Domain(name, rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n), CLASSES)


def step_ms(method: str, batch: int, steps: int, repeats: int) -> float:
    source = build_model(ModelSpec(arch="lenet", image_size=28, num_classes=10), seed=0)
    data = AdaptationData(_domain("s", 4096, 0), _domain("v", 64, 1), None, _domain("t", 64, 2))
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
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    ms = {m: step_ms(m, args.batch, args.steps, args.repeats) for m in METHODS}
    rows = [f"| {m} | {ms[m]:.1f} | {ms[m] / ms['dann']:.2f}× |" for m in METHODS]
    md = "\n".join([
        "## Per-step time of the label-free methods against dann (`benchmarks/method_step_time.py`)", "",
        f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/method_step_time.py --threads {args.threads} "
        "--out benchmarks/RESULTS.md`. LeNet 28×28, batch "
        f"{args.batch} (source and target each), {args.steps} steps per run through each method's own fit, "
        f"median of {args.repeats} runs, all in one process.", "",
        "| method | ms per step | against dann |", "|---|---|---|", *rows, ""])
    print(md)
    if args.out:
        write_section(args.out, "method-step-time", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
