"""Data at real size: a generated ImageFolder of 100,000 RGB images (64×64 and mixed sizes) as the
target and 60,000 as the source, through the pipeline's own stages, each in a fresh process.

Measured, each in its own process (peak RSS = the process's maximum resident set, and separately its
DataLoader workers' largest):

- ``prepare`` (every image decoded once: the content hashes that place the test split and fingerprint
  the data), a short ``pretrain`` (the source model the rest needs), ``similarity``;
- one epoch of ``dann`` over the whole target pool, and of ``linear-probe`` on the labelled target,
  with the frozen blocks' features cached (computed once) against recomputed every epoch;
- reading throughput: the pipeline's lazy batches (seeded order, DataLoader workers) against a bare
  ``DataLoader(torchvision ImageFolder, Resize, ToTensor)`` loop over the same files, same workers;
- the loader the pipeline had before (every image decoded into one float32 array), at sizes it can
  still hold, and what that array would take at 100,000 images.

    python benchmarks/data_scale.py [--root /tmp/tl-scale] [--target 100000] [--source 60000] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import machine, write_section  # noqa: E402

CLASSES = 10
SIZE = 32  # data.image_size: the side every image is brought to


def _draw(args: tuple[str, int, int, int]) -> None:
    """One image: a class-coloured disc at a random place over noise; 64×64, or a random size."""
    from PIL import Image

    folder, index, label, seed = args
    rng = np.random.default_rng(seed)
    h, w = (64, 64) if rng.random() < 0.8 or "source" in folder else tuple(rng.integers(40, 97, 2))
    img = rng.integers(0, 90, (h, w, 3)).astype(np.uint8)
    cy, cx, r = rng.integers(h // 4, 3 * h // 4), rng.integers(w // 4, 3 * w // 4), min(h, w) // 4
    yy, xx = np.ogrid[:h, :w]
    colour = np.array([(37 * label) % 256, (91 * label + 60) % 256, (151 * label + 120) % 256], dtype=np.uint8)
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = colour
    Image.fromarray(img).save(Path(folder) / str(label) / f"{index:06d}.png")


def generate(folder: Path, n: int, seed: int) -> None:
    if folder.exists() and sum(1 for _ in folder.rglob("*.png")) == n:
        return
    for c in range(CLASSES):
        (folder / str(c)).mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder), i, i % CLASSES, seed * 10_000_000 + i) for i in range(n)]
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_draw, jobs, chunksize=500))


def params(root: Path, n_target: int) -> dict:
    return {
        "seed": 0, "device": "cpu",
        "data": {"source": {"name": "imagefolder", "path": str(root / "source")},
                 "target": {"name": "imagefolder", "path": str(root / "target")},
                 "image_size": SIZE, "channels": 3, "source_val_fraction": 0.05,
                 "target_labels_per_class": min(300, n_target // 50), "target_test_fraction": 0.3},
        "model": {"arch": "lenet", "hidden": 256},
        "pretrain": {"epochs": 1, "batch_size": 64, "max_steps_per_epoch": 100},
        "similarity": {"permutations": 100, "max_samples": 1000, "plots": False},
        "adapt": {"train": {"epochs": 1, "batch_size": 64}},
        "evaluate": {"bootstrap": 200},
    }


# Each piece runs in a fresh interpreter (`python data_scale.py --piece NAME --project DIR`), so that
# its peak RSS is its own; it prints one JSON line.
def piece(name: str, project: Path) -> dict:
    from tasks import prepare, pretrain, similarity, validate
    from tasks.data_files import adaptation_data
    from transferlab.config import parse_params

    p = parse_params(json.loads((project / "params.json").read_text()))
    started = time.perf_counter()
    extra: dict = {}
    stages = {"prepare": prepare, "validate": validate, "pretrain": pretrain, "similarity": similarity}
    if name in stages:
        stages[name].run(p, project)
    elif name.startswith("linear-probe"):
        extra = _linear_probe(project, cached=name.endswith("cached"))
    elif name == "dann":
        extra = _dann(project, p)
    elif name == "throughput":
        extra = _throughput(adaptation_data(project).target_unlabelled, project)
    elif name.startswith("eager"):
        extra = _eager(project.parent / "target", int(name.split("-")[1]))
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    workers_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"piece": name, "seconds": time.perf_counter() - started, "rss_mb": self_kb / 1024,
            "workers_rss_mb": workers_kb / 1024, **extra}


def _model(project: Path):
    from tasks.paths import SOURCE_MODEL
    from transferlab.models import load_model

    return load_model(project / SOURCE_MODEL)


def _linear_probe(project: Path, cached: bool, epochs: int = 6) -> dict:
    from tasks.data_files import adaptation_data
    from transferlab.methods import get_method, target_training
    from transferlab.training import TrainSettings

    if not cached:
        target_training._cacheable_prefix = lambda model, settings: 0
    data = adaptation_data(project)
    settings = TrainSettings(epochs=epochs, batch_size=64, patience=epochs)
    t0 = time.perf_counter()
    result = get_method("linear-probe")().fit(_model(project), data, None, settings)
    total = time.perf_counter() - t0
    return {"epochs": epochs, "epoch_s": total / epochs, "labelled": len(data.target_labelled),
            "steps_per_epoch": result.history[0].get("steps", None)}


def _dann(project: Path, p) -> dict:
    from tasks.data_files import adaptation_data
    from transferlab.data.adaptation import AdaptationData
    from transferlab.methods import get_method
    from transferlab.training import TrainSettings

    data = adaptation_data(project)
    data = AdaptationData(data.source_train, data.source_val, None, data.target_unlabelled)
    settings = TrainSettings(epochs=1, batch_size=64, patience=1)
    t0 = time.perf_counter()
    get_method("dann")().fit(_model(project), data, None, settings)
    seconds = time.perf_counter() - t0
    steps = -(-len(data.target_unlabelled) // 64)
    return {"pool": len(data.target_unlabelled), "images_per_s": 2 * 64 * steps / seconds}


def _throughput(pool, project: Path, batches: int = 400) -> dict:
    import torch
    from torchvision import datasets, transforms

    from transferlab.training import BatchStream

    batches = min(batches, len(pool) // 64 - 2)  # within one pass of either loader
    stream = BatchStream(pool, 64, seed=0, name="throughput")
    stream.next("cpu")  # workers up
    t0 = time.perf_counter()
    for _ in range(batches):
        stream.next("cpu")
    ours = 64 * batches / (time.perf_counter() - t0)
    tree = datasets.ImageFolder(str(project.parent / "target"),
                                transform=transforms.Compose([transforms.Resize((SIZE, SIZE)), transforms.ToTensor()]))
    workers = int(os.environ.get("TRANSFERLAB_READ_WORKERS", 2))
    loader = torch.utils.data.DataLoader(tree, batch_size=64, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    bare = 64 * batches / (time.perf_counter() - t0)
    return {"ours_images_per_s": ours, "bare_images_per_s": bare, "bare_over_ours": bare / ours}


def _eager(folder: Path, n: int) -> dict:
    """The loader the pipeline had before: every image decoded into one float32 (N, C, H, W) array."""
    from PIL import Image

    files = sorted(folder.rglob("*.png"))[:: max(1, len(list(folder.rglob("*.png"))) // n)][:n]
    t0 = time.perf_counter()
    images, size = [], None
    for f in files:
        with Image.open(f) as img:
            img = img.convert("RGB")
            size = size or img.size
            images.append(np.asarray(img.resize(size) if img.size != size else img))
    x = (np.moveaxis(np.stack(images), -1, 1).astype(np.float32) / 255.0)
    return {"n": n, "images_per_s": n / (time.perf_counter() - t0), "array_mb": x.nbytes / 2**20}


def run_piece(name: str, project: Path, workers: int | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if workers is not None:
        env["TRANSFERLAB_READ_WORKERS"] = str(workers)
    proc = subprocess.run([sys.executable, __file__, "--piece", name, "--project", str(project)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def table(rows: dict, args, seconds: float) -> str:
    r = rows
    lp_ratio = r["linear-probe"]["epoch_s"] / r["linear-probe-cached"]["epoch_s"]
    peak = max(v["rss_mb"] for k, v in r.items() if not k.startswith("eager"))
    eager_mb_per_image = r["eager-20000"]["array_mb"] / 20000
    lines = [
        "## Data at real size (`benchmarks/data_scale.py`)", "",
        f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/data_scale.py --target {args.target} "
        f"--source {args.source} --out benchmarks/RESULTS.md`. Whole run: {seconds / 60:.1f} min.", "",
        f"Generated ImageFolder trees: target {args.target:,} RGB PNGs (80 % 64×64, 20 % of random sizes 40-96), "
        f"source {args.source:,} (64×64), 10 classes; brought to {SIZE}×{SIZE} RGB (LeNet). Each row is a fresh "
        "process; peak RSS in MB of that process (about 700 MB of it is the libraries: torch, MLflow, sklearn), and "
        "of its largest child (DataLoader workers are forks: their RSS counts the pages they share with it).", "",
        "| piece | seconds | peak RSS | workers' peak RSS | notes |", "|---|---|---|---|---|"]
    notes = {
        "prepare": "every image decoded once (test split by content hash, data fingerprint); splits written as ids",
        "validate": "Great Expectations over every sample's metadata, read a chunk at a time",
        "pretrain": "100 steps (only to have a source model)",
        "similarity": "1,000 samples per domain",
        "dann": f"one epoch over the {r['dann']['pool']:,}-image pool: {r['dann']['images_per_s']:.0f} images/s",
        "linear-probe": f"{r['linear-probe']['labelled']:,} labelled, frozen blocks recomputed: "
                        f"{r['linear-probe']['epoch_s']:.2f} s per epoch",
        "linear-probe-cached": f"frozen blocks' features cached: {r['linear-probe-cached']['epoch_s']:.2f} s per epoch "
                               f"({lp_ratio:.1f}× faster)",
        "throughput": f"ours {r['throughput']['ours_images_per_s']:.0f} images/s, bare DataLoader "
                      f"{r['throughput']['bare_images_per_s']:.0f}: bare/ours {r['throughput']['bare_over_ours']:.2f}",
    }
    for name, v in r.items():
        if name.startswith("eager"):
            notes[name] = (f"the former loader, {v['n']:,} images: {v['images_per_s']:.0f} images/s, "
                           f"array {v['array_mb']:.0f} MB")
        lines.append(f"| {name} | {v['seconds']:.0f} | {v['rss_mb']:.0f} | {v['workers_rss_mb']:.0f} | {notes[name]} |")
    lines += ["", f"Goals: peak RSS under 3 GB at {args.target:,} images: {peak:.0f} MB, "
                  f"{'met' if peak < 3072 else 'not met'}; throughput within 1.2× of a bare DataLoader loop: "
                  f"{r['throughput']['bare_over_ours']:.2f}×, "
                  f"{'met' if r['throughput']['bare_over_ours'] <= 1.2 else 'not met'}; cached linear probe ≥ 5× "
                  f"faster per epoch: {lp_ratio:.1f}×, {'met' if lp_ratio >= 5 else 'not met'}. The former loader "
                  f"would hold {eager_mb_per_image * args.target / 1024:.1f} GB of float32 pixels for the target "
                  "alone (its array, measured per image at 20,000 images)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("/tmp/tl-scale"))
    p.add_argument("--target", type=int, default=100_000)
    p.add_argument("--source", type=int, default=60_000)
    p.add_argument("--piece")
    p.add_argument("--project", type=Path)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.piece:
        print(json.dumps(piece(args.piece, args.project)))
        return 0
    started = time.perf_counter()
    generate(args.root / "target", args.target, seed=1)
    generate(args.root / "source", args.source, seed=2)
    project = args.root / "project"
    project.mkdir(parents=True, exist_ok=True)
    (project / "params.json").write_text(json.dumps(params(args.root, args.target)))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{project / 'mlflow.db'}"
    rows = {}
    for name in ("prepare", "validate", "pretrain", "similarity", "throughput", "linear-probe", "linear-probe-cached", "dann",
                 "eager-5000", "eager-20000"):
        rows[name] = run_piece(name, project)
    md = table(rows, args, time.perf_counter() - started)
    print(md)
    if args.out:
        write_section(args.out, "data-scale", md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
