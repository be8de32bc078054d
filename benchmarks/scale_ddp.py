"""DDP: one pretraining run across N CPU processes (gloo, torchrun) against the same run in one process.

MNIST (the registry's reader on ../shared/data) pretrains a LeNet source model, the pretrain stage's
training (``train_classifier``), once in one process with batch B and once in N processes with B/N
each (the same global batch, ``transferlab.training.distributed``). Printed: wall time (process start
included), training time inside the run, speed-up against the one-process baseline measured in the
same invocation, the per-epoch loss difference, and source-validation and USPS accuracy of both
models (USPS is report-only: it chooses nothing). LeNet has dropout, drawn per rank, so the runs do
not match to float precision (tests/transferlab/test_training_distributed.py pins that, on a model
without dropout); the accuracy difference says how far apart they end.

    python benchmarks/scale_ddp.py --threads 1                # 1 vs 2 processes, print the table
    python benchmarks/scale_ddp.py --threads 1 --out benchmarks/RESULTS.md

``benchmarks/scale.py --part ddp`` calls :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START_LOAD = os.getloadavg()[0]  # read before this run adds its own load
sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data"
SECTION = "scale-ddp"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--processes", type=int, default=2, help="processes of the distributed run (vs 1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--train", type=int, default=12000, help="MNIST training samples (stratified, seeded)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64, help="global batch (per rank: batch / processes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1,
                   help="runs of each, alternating 1, N, 1, N, ...; the table shows each one's fastest (least disturbed)")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=None, help="write the table into this RESULTS.md section")
    p.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)  # internal: one run's result file
    return p


def _worker(args) -> int:
    """One process of a run (rank r of WORLD_SIZE under torchrun, else alone): train, rank 0 reports."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(args.threads)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("gloo")
    from benchmarks.digits import load, stratified
    from transferlab.data import split_source
    from transferlab.models import ModelSpec, build_model
    from transferlab.training import TrainSettings, accuracy, distributed, train_classifier

    mnist = stratified(load("mnist", args.data, "train"), args.train, args.seed)
    train, val = split_source(mnist, 0.1, args.seed)
    usps = load("usps", args.data, "test")
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch, lr=1e-3, patience=args.epochs,
                             seed=args.seed)
    model = build_model(ModelSpec(arch="lenet", num_classes=10, classes=list(train.classes)), seed=args.seed)
    started = time.perf_counter()
    result = train_classifier(model, train, val, settings)
    seconds = time.perf_counter() - started
    if distributed.is_main():
        args.worker.write_text(json.dumps({
            "train_s": seconds, "losses": [h["loss"] for h in result.history],
            "val_accuracy": accuracy(result.model, val), "usps_accuracy": accuracy(result.model, usps)}))
    if distributed.active():
        dist.destroy_process_group()
    return 0


def _run(args, processes: int, out: Path) -> dict:
    me = [str(Path(__file__).resolve()), "--worker", str(out), "--threads", str(args.threads),
          "--train", str(args.train), "--epochs", str(args.epochs), "--batch", str(args.batch),
          "--seed", str(args.seed), "--data", str(args.data)]
    if processes == 1:
        cmd = [sys.executable, *me]
    else:  # as the stages start it (tasks/distributed.py): one machine, loopback rendezvous
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc-per-node={processes}",
               "--rdzv-backend=c10d", "--rdzv-endpoint=127.0.0.1:0", "--max-restarts=0", *me]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo"),
           "OMP_NUM_THREADS": str(args.threads)}
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return {**json.loads(out.read_text()), "wall_s": time.perf_counter() - started}


def _table(args, one: dict, many: dict) -> str:
    loss_diff = max(abs(a - b) for a, b in zip(one["losses"], many["losses"]))
    rows = [("1 process", one), (f"{args.processes} processes (DDP, gloo)", many)]
    lines = ["| run | wall s | train s | speed-up (train) | speed-up (wall) | final loss | MNIST val acc | USPS acc |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in rows:
        lines.append(f"| {name} | {r['wall_s']:.1f} | {r['train_s']:.1f} | {one['train_s'] / r['train_s']:.2f}× | "
                     f"{one['wall_s'] / r['wall_s']:.2f}× | {r['losses'][-1]:.4f} | {r['val_accuracy']:.2%} | "
                     f"{r['usps_accuracy']:.2%} |")
    lines.append("")
    lines.append(f"Largest per-epoch mean-loss difference: {loss_diff:.4f}; accuracy difference: MNIST val "
                 f"{(many['val_accuracy'] - one['val_accuracy']) * 100:+.2f} points, USPS "
                 f"{(many['usps_accuracy'] - one['usps_accuracy']) * 100:+.2f} points.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.worker is not None:
        return _worker(args)
    if args.batch % args.processes:
        raise SystemExit(f"--batch {args.batch} does not split over {args.processes} processes")
    ones, manys = [], []
    with tempfile.TemporaryDirectory(prefix="scale-ddp-") as tmp:
        for i in range(args.repeats):
            ones.append(_run(args, 1, Path(tmp) / f"one-{i}.json"))
            manys.append(_run(args, args.processes, Path(tmp) / f"many-{i}.json"))
    one, many = (min(runs, key=lambda r: r["train_s"]) for runs in (ones, manys))
    table = _table(args, one, many)
    if args.repeats > 1:
        table += ("\n\nTraining seconds of every run (1 process / N processes): "
                  + ", ".join(f"{a['train_s']:.1f} / {b['train_s']:.1f}" for a, b in zip(ones, manys)) + ".")
    print(table)
    if args.out is not None:
        from benchmarks.results import machine, write_section

        command = "python benchmarks/scale_ddp.py " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
        write_section(args.out, SECTION, "\n".join([
            "## DDP: one pretraining run across 2 CPU processes vs 1 (issue 24)", "",
            f"MNIST {args.train} samples (90 % train / 10 % validation, seed {args.seed}), LeNet, {args.epochs} epochs, "
            f"global batch {args.batch} ({args.batch // args.processes} per rank with {args.processes} processes), "
            f"Adam 1e-3, {args.threads} torch thread(s) per process; USPS test is report-only. Same seeds in "
            "every run: the runs differ only in dropout draws (per rank) and float reduction order.", "",
            f"Machine: {machine()}; load average {START_LOAD:.1f} when the run started (other jobs on the cores "
            "make the wall times noisy).", f"Command: `{command}`", "", table, "",
            "Reading: with {0} free cores the training speed-up is at most {0}× (less the gradient all-reduce each "
            "step); the wall time adds each process's start (imports, data) and torchrun's rendezvous. The repeat "
            "pairs show how far a single measurement moves.".format(args.processes), ""]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
