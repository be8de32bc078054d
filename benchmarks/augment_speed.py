"""Batched per-sample augmentation (transferlab/training/augment.py) against the per-image
torchvision.transforms.v2 loop it replaces, in the same run.

A v2 transform called on a batch tensor draws one set of parameters for the whole batch, so
per-sample augmentation with v2 is a Python loop over images. Baselines: ``v2.RandomAffine`` per
image (the weak pipeline's geometry) and ``v2.RandAugment`` + ``v2.RandomErasing`` per image (the
strong one), on uint8 images as RandAugment expects. Median of 5 timings of 20 batches.

    python benchmarks/augment_speed.py [--threads 2] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision.transforms.v2 as v2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import machine, write_section  # noqa: E402
from transferlab.training.augment import Augmenter  # noqa: E402


def _ms_per_batch(fn, repeats: int = 5, batches: int = 20) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(batches):
            fn()
        times.append((time.perf_counter() - t0) / batches * 1000)
    return statistics.median(times)


def run(args) -> str:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    weak_v2 = v2.RandomAffine(degrees=10, translate=(0.125, 0.125), scale=(0.9, 1.1))
    strong_v2 = v2.Compose([weak_v2, v2.RandAugment(num_ops=2), v2.RandomErasing(p=1.0, scale=(0.02, 0.25))])
    ours = Augmenter()
    rows = []
    for channels, size, batch in ((1, 28, 64), (1, 28, 128), (3, 32, 64)):
        x = torch.rand(batch, channels, size, size)
        xu = (x * 255).to(torch.uint8)
        for strength, baseline in (("weak", weak_v2), ("strong", strong_v2)):
            theirs = _ms_per_batch(lambda: torch.stack([baseline(im) for im in xu]))
            mine = _ms_per_batch(lambda: ours(x, strength))
            rows.append(f"| {channels}×{size}×{size} | {batch} | {strength} | {theirs:.1f} | {mine:.1f} | "
                        f"{theirs / mine:.1f}× |")
    return "\n".join([
        "## Batched augmentation against a per-image torchvision v2 loop (`benchmarks/augment_speed.py`)", "",
        f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/augment_speed.py --threads {args.threads} "
        "--out benchmarks/RESULTS.md`. Milliseconds per batch, median of 5 timings of 20 batches; baseline = "
        "v2.RandomAffine (weak) or RandomAffine + RandAugment(2 ops) + RandomErasing (strong), one image at a "
        "time, measured in the same run.", "",
        "| images | batch | strength | v2 per image (ms) | batched (ms) | speed-up |", "|---|---|---|---|---|---|",
        *rows, ""])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    md = run(args)
    print(md)
    if args.out:
        write_section(args.out, "augment-speed", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
