"""Training-step time: convolution weights channels-last (what ``build_model`` returns) against
the default contiguous layout, measured in the same run.

One step = forward, cross-entropy, backward and an Adam update on a random batch, the inner
loop of every method. The median of ``--repeats`` timings of ``--steps`` steps is reported,
after warm-up steps that are not timed.

    python benchmarks/step_time.py [--threads 2] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transferlab.models import ModelSpec, build_model  # noqa: E402

CASES = [("lenet", 28, 64, 100), ("lenet", 28, 128, 60), ("resnet18", 32, 32, 6)]


def step_ms(arch: str, size: int, batch: int, steps: int, layout: str, repeats: int) -> float:
    model = build_model(ModelSpec(arch=arch, image_size=size), seed=0)
    if layout == "contiguous":
        model = model.to(memory_format=torch.contiguous_format)
    model.train()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, size, size, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    optimiser = torch.optim.Adam(model.parameters(), 1e-3)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    for _ in range(max(2, steps // 10)):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - start) / steps * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, help="also write the markdown table here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from benchmarks.results import machine, write_section

    lines = ["## Training-step time: channels-last convolution weights (`benchmarks/step_time.py`)", "",
             f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/step_time.py --threads {args.threads} "
             "--out benchmarks/RESULTS.md`. One step = forward + cross-entropy + backward + Adam update; median of "
             f"{args.repeats} timings. Baseline = the same network with contiguous (NCHW) weights, in the same run.",
             "", "| network | batch | contiguous (ms/step) | channels-last (ms/step) | speed-up |", "|---|---|---|---|---|"]
    for arch, size, batch, steps in CASES:
        base = step_ms(arch, size, batch, steps, "contiguous", args.repeats)
        fast = step_ms(arch, size, batch, steps, "channels-last", args.repeats)
        row = f"| {arch} {size}×{size} | {batch} | {base:.1f} | {fast:.1f} | {base / fast:.2f}× |"
        print(row, flush=True)
        lines.append(row)
    markdown = "\n".join(lines) + "\n"
    if args.out:
        write_section(args.out, "step-time", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
