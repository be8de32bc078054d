"""Where ``benchmarks/digits.py --standard``'s recipe for label-free adaptation was chosen: a tuning
suite that shares no dataset with the reported MNIST ↔ USPS table.

Pairs: ``mnist5k → uci-digits`` and ``usps (train split) → uci-digits`` (``source_free.py``'s tuning
pairs: uci-digits is scikit-learn's 8×8 digits, upsampled; no MNIST or USPS test image or label is
read). Each row is one variant: a source recipe (augmentation, label smoothing) and a method trained
from that source model with the standard adaptation budget; accuracy (%) on the whole uci-digits pool,
which is also the unlabelled pool (transductive), mean ± std over the seeds.

    python benchmarks/uda_tuning.py [--seeds 0] [--pairs ...] [--variants 0 3 ...] [--out benchmarks/RESULTS.md]

One core per process (``--threads 1``): run one process per pair to use both cores.
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

from benchmarks import digits  # noqa: E402
from benchmarks.results import machine, write_section  # noqa: E402
from benchmarks.source_free import TUNING_PAIRS, load, source_split, unlabelled  # noqa: E402
from transferlab.methods import AdaptationData, get_method  # noqa: E402
from transferlab.models import ModelSpec, build_model  # noqa: E402
from transferlab.training import accuracy, train_classifier  # noqa: E402
from transferlab.training.augment import AugmentSpec  # noqa: E402

# (source recipe: pretrain settings update, method, adaptation settings update, method config)
# digits.py's budgets at the library's default augmentation: a row changes only what it says.
BASE_PRETRAIN = digits.STANDARD_PRETRAIN.model_copy(update={"augmentation": AugmentSpec()})
BASE_ADAPT = digits.STANDARD_ADAPT.model_copy(update={"augmentation": AugmentSpec()})
WIDE_SCALE = AugmentSpec(scale=0.3)
# A recipe's "arch" is the network's; the rest update the pretraining settings.
SOURCES = {"plain": {}, "weak-aug": {"augment": "weak"}, "weak-aug ε 0.1": {"augment": "weak", "label_smoothing": 0.1},
           "weak-aug lenet-bn": {"augment": "weak", "arch": "lenet-bn"},
           "weak-aug scale 0.3": {"augment": "weak", "augmentation": WIDE_SCALE},
           "weak-aug scale 0.3 ε 0.1": {"augment": "weak", "augmentation": WIDE_SCALE, "label_smoothing": 0.1}}
VARIANTS: list[tuple[str, str, dict, dict]] = [
    ("plain", "source-only", {}, {}),
    ("weak-aug", "source-only", {}, {}),
    ("weak-aug ε 0.1", "source-only", {}, {}),
    ("plain", "adamatch", {}, {}),
    ("weak-aug", "adamatch", {}, {}),
    ("weak-aug ε 0.1", "adamatch", {}, {}),
    ("weak-aug", "adamatch", {"epochs": 16}, {}),
    ("weak-aug", "mean-teacher", {}, {}),
    ("weak-aug", "mcc", {}, {}),
    ("weak-aug", "mcc", {"augment": "weak"}, {}),
    ("weak-aug", "dann", {}, {}),
    ("weak-aug", "dann", {"augment": "weak"}, {}),
    ("weak-aug", "adamatch", {"epochs": 16}, {"ema": 0.999}),
    ("weak-aug lenet-bn", "source-only", {}, {}),
    ("weak-aug lenet-bn", "adamatch", {"epochs": 16}, {}),
    ("weak-aug", "adamatch", {"epochs": 16}, {"target_ratio": 3}),
    ("weak-aug", "adamatch", {"epochs": 32}, {}),
    ("weak-aug lenet-bn", "adamatch", {"epochs": 32}, {}),
    ("weak-aug scale 0.3", "source-only", {}, {}),
    ("weak-aug scale 0.3", "adamatch", {"epochs": 16, "augmentation": WIDE_SCALE}, {}),
    ("weak-aug scale 0.3", "adamatch", {"epochs": 32, "augmentation": WIDE_SCALE}, {}),
    ("weak-aug scale 0.3", "adamatch", {"epochs": 48, "augmentation": WIDE_SCALE}, {}),
    ("weak-aug scale 0.3", "mean-teacher", {"epochs": 16, "augmentation": WIDE_SCALE}, {}),
    ("weak-aug scale 0.3", "adamatch", {"epochs": 48, "augmentation": WIDE_SCALE}, {"ema": 0.99}),
    ("weak-aug scale 0.3", "adamatch", {"epochs": 48, "augmentation": WIDE_SCALE}, {"ema": 0.999}),
    ("weak-aug scale 0.3", "adamatch", {"epochs": 64, "augmentation": WIDE_SCALE}, {}),
    ("weak-aug scale 0.3", "adamatch", {"epochs": 64, "augmentation": WIDE_SCALE}, {"ema": 0.99}),
    ("weak-aug scale 0.3 ε 0.1", "adamatch", {"epochs": 64, "augmentation": WIDE_SCALE}, {}),
]


def run(args) -> str:
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    scores: dict[tuple[int, str], list[float]] = {}
    for pair in args.pairs:
        s, t = TUNING_PAIRS[pair]
        source, target = load(s, args.data, "train"), load(t, args.data, "train")
        pool = unlabelled(target)
        for seed in args.seeds:
            src_train, src_val = source_split(source, seed)
            models = {}
            for i in args.variants:
                recipe, method, update, config = VARIANTS[i]
                if recipe not in models:
                    models[recipe] = pretrain(recipe, src_train, src_val, seed)
                t0 = time.perf_counter()
                model = models[recipe]
                if method != "source-only":
                    ada = BASE_ADAPT.model_copy(update={**update, "seed": seed})
                    model = get_method(method)().fit(model, AdaptationData(src_train, src_val, None, pool),
                                                     config, ada).model
                acc = 100 * accuracy(model, target)
                scores.setdefault((i, pair), []).append(acc)
                print(f"{pair} seed {seed} {recipe} {method} {update} {config}: {acc:.1f} "
                      f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return table(args, scores, time.perf_counter() - started)


def pretrain(recipe: str, src_train, src_val, seed: int):
    update = dict(SOURCES[recipe])
    spec = ModelSpec(arch=update.pop("arch", "lenet"), image_size=28, num_classes=10)
    pre = BASE_PRETRAIN.model_copy(update={**update, "seed": seed})
    return train_classifier(build_model(spec, seed=seed), src_train, src_val, pre).model


def _shown(value) -> str:
    if isinstance(value, AugmentSpec):  # only what the row changes
        return " ".join(f"{k} {v}" for k, v in value.model_dump(exclude_defaults=True).items())
    return str(value)


def table(args, scores, seconds: float) -> str:
    seeds = " ".join(map(str, args.seeds))
    lines = [f"## Label-free adaptation tuning suite (seeds {seeds}; pairs {', '.join(args.pairs)})", "",
             f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/uda_tuning.py --seeds {seeds} "
             f"--pairs {' '.join(args.pairs)}`. Whole run: {seconds / 60:.1f} min.", "",
             "Source network lenet (unless the recipe names another); pretraining = digits.py --standard's "
             "(10 epochs, early stopping on a 10 % "
             "source validation split) with the row's source recipe; adaptation = its standard budget (8 × 250 "
             "steps, annealed lr, label-free information-maximisation checkpoint) with the row's change. "
             "Accuracy (%) on the whole uci-digits pool (also the unlabelled pool).", "",
             "| source recipe | method | change | " + " | ".join(args.pairs) + " |",
             "|" + "---|" * (3 + len(args.pairs))]
    for i in args.variants:
        recipe, method, update, config = VARIANTS[i]
        change = ", ".join(f"{k} {_shown(v)}" for k, v in {**update, **config}.items()) or "-"
        cells = []
        for p in args.pairs:
            v = scores[(i, p)]
            cells.append(f"{statistics.mean(v):.1f}" + (f" ± {statistics.stdev(v):.1f}" if len(v) > 1 else ""))
        lines.append(f"| {recipe} | {method} | {change} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--pairs", nargs="+", default=list(TUNING_PAIRS), choices=list(TUNING_PAIRS))
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", type=int, nargs="+", default=list(range(len(VARIANTS))),
                   help="row numbers of VARIANTS to run (default: all)")
    args = p.parse_args(argv)
    md = run(args)
    print(md)
    if args.out:
        write_section(args.out, "uda-tuning-" + "-".join(sorted(args.pairs)).replace("→", "-"), md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
