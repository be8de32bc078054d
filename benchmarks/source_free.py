"""Source-free adaptation on MNIST ↔ USPS: ``shot`` and ``tent`` from the pipeline's own source
models, against ``dann`` / ``cdan`` trained with the source data, mean ± std over seeds.

Protocol (SHOT's, Liang et al. 2020): the source model is trained by the pipeline's pretrain
routine (:func:`transferlab.training.train_classifier`) on the source's training split, early
stopping on a seeded 10 % source validation split; the target's **training** split is the
unlabelled pool (its labels are replaced by zeros before any method sees it); accuracy is
measured once, on the target's full **test** split, after each method has chosen its checkpoint
without it. No target label of any split reaches a method, a checkpoint or a setting:

- ``shot`` / ``tent`` get no source data (``AdaptationData(source_train=None, ...)``) and keep
  their label-free checkpoint (``RECIPE`` below says which);
- ``dann`` / ``cdan`` get the source data, their defaults (label-free information-maximisation
  checkpoint) and ``benchmarks/digits.py --standard``'s budget (8 × 250 steps, annealed lr);
- ``source-only`` is the source model as it is.

The recipe (source network, pretraining, SHOT and tent settings) was fixed on a tuning suite
that is neither reported pair, ``--tune`` reruns it: ``mnist5k → uci-digits`` and
``usps (train split) → uci-digits``, scored with uci-digits labels (a dataset the reported pairs
never use). See ``TUNING`` for what was compared and RESULTS.md for the outcome.

    python benchmarks/source_free.py [--seeds 3] [--quick] [--out benchmarks/RESULTS.md]
    python benchmarks/source_free.py --tune [--seeds 3] [--out benchmarks/RESULTS.md]

One core (``--threads 1``) by default: the reference machine has 2 cores shared with other work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import add_device_argument, device_flag, device_section, machine, write_section  # noqa: E402
from transferlab.data import DomainSpec, harmonise, load_domain  # noqa: E402
from transferlab.data.types import Domain  # noqa: E402
from transferlab.methods import AdaptationData, get_method  # noqa: E402
from transferlab.models import ModelSpec, build_model  # noqa: E402
from transferlab.training import TrainSettings, accuracy, train_classifier  # noqa: E402

CLASSES = tuple(str(i) for i in range(10))
FOLDERS = {"mnist": "MNIST", "usps": "usps"}
PAIRS = {"mnist→usps": ("mnist", "usps"), "usps→mnist": ("usps", "mnist")}
TUNING_PAIRS = {"mnist5k→uci-digits": ("mnist5k", "uci-digits"), "usps→uci-digits": ("usps", "uci-digits")}
METHODS = ("source-only", "shot", "tent", "dann", "cdan")
PUBLISHED = {"shot": (97.9, 98.0), "source-only": (82.1, 74.6), "dann": (91.7, 95.2), "cdan": (96.0, 97.7)}
GOALS = {"mnist→usps": 97.0, "usps→mnist": 97.5}  # shot, mean of 3 seeds


@dataclass(frozen=True)
class Recipe:
    """Everything that makes a run: the source network and how each stage trains."""

    spec: ModelSpec
    pretrain: TrainSettings
    methods: dict[str, tuple[TrainSettings, dict]] = field(default_factory=dict)

    def steps(self, method: str, pool: int) -> int:
        settings, _ = self.methods[method]
        per_epoch = max(settings.min_steps_per_epoch, -(-pool // settings.batch_size))
        if settings.max_steps_per_epoch is not None:
            per_epoch = min(per_epoch, settings.max_steps_per_epoch)
        return settings.epochs * per_epoch


# dann / cdan: benchmarks/digits.py --standard's adaptation budget and the methods' defaults.
UDA = TrainSettings(epochs=8, batch_size=64, lr=1e-3, patience=8, max_steps_per_epoch=250, lr_schedule="annealed")

RECIPE = Recipe(
    # SHOT's digit network: LeNet conv blocks + a 256-d linear/batch-norm bottleneck. On the tuning
    # suite it beat the pipeline's plain lenet under SHOT, and tent needs its batch norm.
    spec=ModelSpec(arch="lenet-bn", hidden=256, image_size=28, num_classes=10),
    # SHOT's 30 source epochs, early stopping on source validation as the pipeline's pretrain stage
    # does. No label smoothing: SHOT's ε = 0.1 lost on both tuning pairs (see TUNING).
    pretrain=TrainSettings(epochs=30, batch_size=64, lr=1e-3, patience=5, label_smoothing=0.0),
    methods={
        # SHOT: 30 epochs over the target pool, β = 0.1, annealed lr (3e-4 won the tuning suite's
        # 1e-4 / 3e-4 / 1e-3), the last iterate (the paper's protocol; the information-maximisation
        # checkpoint chose the last epoch in every tuning run anyway).
        "shot": (TrainSettings(epochs=30, batch_size=64, lr=3e-4, patience=30, lr_schedule="annealed"),
                 {"checkpoint": "last-epoch"}),
        # tent: one online pass at the reference code's lr 1e-3 (the paper's protocol), the last iterate.
        "tent": (TrainSettings(epochs=1, batch_size=64, lr=1e-3, weight_decay=0.0), {"checkpoint": "last-epoch"}),
        "dann": (UDA, {}),
        "cdan": (UDA, {}),
    },
)


# What was compared on the tuning suite (``--tune``), each on both tuning pairs: a source recipe
# (architecture, label smoothing ε) and a method with changes to RECIPE's settings / config.
# SHOT's own recipe is lenet-bn, ε 0.1; the pipeline's default network is lenet.
TUNING: list[tuple[str, float, str, dict, dict]] = [
    ("lenet", 0.0, "shot", {"lr": 1e-3}, {}),
    ("lenet", 0.0, "shot", {"lr": 1e-4}, {}),
    ("lenet", 0.1, "shot", {"lr": 1e-3}, {}),
    ("lenet", 0.1, "shot", {"lr": 1e-4}, {}),
    ("lenet-bn", 0.1, "shot", {"lr": 1e-3}, {}),
    ("lenet-bn", 0.1, "shot", {"lr": 3e-4}, {}),
    ("lenet-bn", 0.1, "shot", {"lr": 1e-4}, {}),
    ("lenet-bn", 0.0, "shot", {"lr": 1e-3}, {}),
    ("lenet-bn", 0.0, "shot", {"lr": 3e-4}, {}),
    ("lenet-bn", 0.0, "shot", {"lr": 1e-4}, {}),
    ("lenet-bn", 0.0, "shot", {"lr": 3e-4}, {"checkpoint": "information-maximisation"}),
    ("lenet-bn", 0.0, "shot", {"lr": 3e-4}, {"beta": 0.3}),
    ("lenet-bn", 0.0, "tent", {"epochs": 1, "lr": 1e-3}, {}),
    ("lenet-bn", 0.0, "tent", {"epochs": 1, "lr": 1e-4}, {}),
    ("lenet-bn", 0.0, "tent", {"epochs": 10, "lr": 1e-3}, {}),
    ("lenet-bn", 0.0, "tent", {"epochs": 10, "lr": 1e-4}, {}),
]


CHOICES = (
    "Recipe chosen on the tuning suite (section `source-free-tuning`, `--tune`), never on the reported "
    "pairs: lenet-bn over the pipeline's lenet under shot (and tent needs its batch norm); no label smoothing "
    "(SHOT's ε = 0.1 lost with every learning rate on both tuning pairs); shot's Adam lr 3e-4 (against 1e-4 and "
    "1e-3); β = 0.1 (0.3 lost); the last iterate (the information-maximisation checkpoint picked the last epoch "
    "in every tuning run, so the two coincide there); tent's learning rate and epochs made no difference there, "
    "so it keeps its paper's one pass at lr 1e-3.")
UNTRIED = (
    "Not tried, and what could close the gap where a goal is missed: the reference code's SGD (lr 0.01, "
    "momentum 0.9, Nesterov, weight decay 1e-3; the shared training loop has only Adam), a weight-normalised "
    "head (the pipeline's classifier head is a plain linear layer), inputs normalised to [-1, 1], source "
    "validation on the source's test split; SHOT's label smoothing again, since the tuning suite's 8×8 "
    "target may not speak for USPS; and more target updates on the small USPS pool (30 epochs are 3,420 steps "
    "on mnist→usps against 28,140 on usps→mnist). Choosing any of them honestly needs a tuning pair that "
    "resembles the reported ones more closely than uci-digits does.")


def load(name: str, data: Path, split: str) -> Domain:
    """A domain at 28×28 grey: MNIST / USPS splits from ``data`` (USPS upsampled bilinearly), or a
    built-in registry dataset (mnist5k, uci-digits; they have no splits, ``split`` is ignored)."""
    if name in FOLDERS:
        spec = DomainSpec(name=name, path=str(data / FOLDERS[name]), split=split)
    else:
        spec = DomainSpec(name=name)
    return harmonise(load_domain(spec), 28, 1)


def source_split(source: Domain, seed: int, n: int | None = None) -> tuple[Domain, Domain]:
    """(train, validation): a seeded 10 % of the source's training split validates (early stopping)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(source))
    if n is not None:
        perm = perm[:n]
    n_val = len(perm) // 10
    return source.subset(perm[n_val:], "source-train"), source.subset(perm[:n_val], "source-val")


def unlabelled(domain: Domain, n: int | None = None, seed: int = 0) -> Domain:
    """The target pool with its labels replaced by zeros: nothing downstream can read them."""
    if n is not None and n < len(domain):
        domain = domain.subset(np.sort(np.random.default_rng(seed + 1).permutation(len(domain))[:n]))
    return Domain("target-unlabelled", domain.x, np.zeros(len(domain), dtype=np.int64), domain.classes)


def run_pair(recipe: Recipe, source: Domain, target_pool: Domain, target_eval: Domain, methods: list[str],
             seed: int, device: str, n_source: int | None = None, n_target: int | None = None,
             report=None) -> dict[str, tuple[float, float]]:
    """{method: (target accuracy %, seconds)} for one seed; 'source-only''s seconds are pretraining's."""
    src_train, src_val = source_split(source, seed, n_source)
    pool = unlabelled(target_pool, n_target, seed)
    t0 = time.perf_counter()
    model = train_classifier(build_model(recipe.spec, seed=seed), src_train, src_val,
                             recipe.pretrain.model_copy(update={"seed": seed, "device": device})).model
    out = {"source-only": (100 * accuracy(model, target_eval), time.perf_counter() - t0)}
    if report:
        report("source-only", *out["source-only"], f"source val {100 * accuracy(model, src_val):.1f}")
    for name in methods:
        if name == "source-only":
            continue
        cls = get_method(name)
        settings, config = recipe.methods[name]
        if cls.uses_source:
            data = AdaptationData(src_train, src_val, None, pool)
        else:  # source-free: the source model and the unlabelled pool, nothing else
            data = AdaptationData(None, None, None, pool, source_classes=CLASSES)
        t0 = time.perf_counter()
        result = cls().fit(model, data, config, settings.model_copy(update={"seed": seed, "device": device}))
        out[name] = (100 * accuracy(result.model, target_eval), time.perf_counter() - t0)
        if report:
            report(name, *out[name], result.checkpoint_criterion)
    return out


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {sd:.1f}"


def describe(settings: TrainSettings, config: dict) -> str:
    parts = [f"{settings.epochs} epochs" + (f" × ≤{settings.max_steps_per_epoch} steps"
                                             if settings.max_steps_per_epoch else ""),
             f"batch {settings.batch_size}", f"Adam lr {settings.lr:g}"
             + (" annealed" if settings.lr_schedule == "annealed" else ""), f"wd {settings.weight_decay:g}"]
    parts += [f"{k} {v}" for k, v in config.items()]
    return ", ".join(parts)


def benchmark(args) -> str:
    torch.set_num_threads(args.threads)
    n_source, n_target, recipe = None, None, RECIPE
    if args.quick:  # a smoke test of the whole table: subsets, short schedules
        n_source, n_target = 3000, 2000
        recipe = Recipe(RECIPE.spec, RECIPE.pretrain.model_copy(update={"epochs": 3}),
                        {k: (s.model_copy(update={"epochs": min(s.epochs, 2)}), c)
                         for k, (s, c) in RECIPE.methods.items()})
    methods = args.methods or list(METHODS)
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    pools: dict[str, int] = {}
    started = time.perf_counter()
    for pair in args.pairs:
        s, t = PAIRS[pair]
        source, pool, test = load(s, args.data, "train"), load(t, args.data, "train"), load(t, args.data, "test")
        pools[pair] = min(len(pool), n_target or len(pool))
        for seed in args.seeds:
            def report(name, acc, secs, note, pair=pair, seed=seed):
                print(f"{pair} seed {seed} {name:12s} {acc:5.1f}  {secs:6.1f}s  [{note}]", file=sys.stderr, flush=True)

            for name, value in run_pair(recipe, source, pool, test, methods, seed, args.device, n_source, n_target,
                                        report).items():
                results.setdefault((pair, name), []).append(value)
    return table(recipe, results, methods, args, pools, time.perf_counter() - started)


def table(recipe: Recipe, results, methods, args, pools, total_s: float) -> str:
    mode = "quick" if args.quick else "full"
    seeds = " ".join(map(str, args.seeds))
    command = (f".venv/bin/python benchmarks/source_free.py{' --quick' if args.quick else ''} --seeds {seeds}"
               + (f" --threads {args.threads}" if args.threads != 1 else "") + device_flag(args.device)
               + (f" --pairs {' '.join(args.pairs)}" if list(args.pairs) != list(PAIRS) else "")
               + " --out benchmarks/RESULTS.md")
    lines = [f"## Source-free adaptation, MNIST ↔ USPS ({mode} mode, seeds {', '.join(map(str, args.seeds))})", "",
             f"Machine: {machine()}. Command: `{command}`. Whole run: {total_s / 60:.1f} min.", "",
             "Protocol: source model trained by the pipeline's pretrain routine on the source's train split "
             "(early stopping on a seeded 10 % of it); the target's train split is the unlabelled pool (labels "
             "zeroed); accuracy (%) on the target's full test split, mean ± std over the seeds (training seeds; "
             "the seed also draws the source validation split). No target label is used by any method, "
             "checkpoint or setting. shot and tent get no source data; dann and cdan train with it, from the same "
             "source models.", "",
             f"Source network: `{recipe.spec.arch}` (hidden {recipe.spec.hidden}); pretraining: "
             f"{describe(recipe.pretrain, {})}, patience {recipe.pretrain.patience}, label smoothing "
             f"{recipe.pretrain.label_smoothing:g}."]
    for name in methods:
        if name in recipe.methods:
            settings, config = recipe.methods[name]
            steps = ", ".join(f"{p} {recipe.steps(name, n):,} steps" for p, n in pools.items())
            lines.append(f"{name}: {describe(settings, config)} ({steps}).")
    lines += ["", "| method | adapts with source data | " + " | ".join(f"{p} acc | s per run" for p in args.pairs)
              + " | published |", "|" + "---|" * (2 + 2 * len(args.pairs) + 1)]
    for name in methods:
        uses_source = name in ("dann", "cdan")
        cells = []
        for pair in args.pairs:
            rows = results.get((pair, name), [])
            cells += [mean_sd([r[0] for r in rows]), f"{statistics.mean(r[1] for r in rows):.0f}"]
        pub = PUBLISHED.get(name)
        used = "-" if name == "source-only" else ("yes" if uses_source else "no")
        lines.append(f"| {name} | {used} | " + " | ".join(cells)
                     + f" | {'-' if pub is None else f'{pub[0]} / {pub[1]}'} |")
    lines += ["", "s per run: wall seconds of one training run on this machine (source-only: the source "
              "pretraining, shared by every row of its seed). Published: shot from the SHOT paper (LeNet-BN "
              "source with label smoothing, SGD, last iterate); source-only, dann, cdan from "
              "Transfer-Learning-Library (LeNet, checkpoints picked with target test labels)."]
    per_seed = []
    for name in methods:
        for pair in args.pairs:
            rows = results.get((pair, name), [])
            per_seed.append(f"{name} {pair} " + " / ".join(f"{r[0]:.2f}" for r in rows))
    lines += ["", f"Per seed ({', '.join(map(str, args.seeds))}): " + "; ".join(per_seed) + "."]
    if "shot" in methods and not args.quick:
        verdicts = []
        for pair in args.pairs:
            rows = results.get((pair, "shot"), [])
            acc = statistics.mean(r[0] for r in rows)
            ok = acc >= GOALS[pair] and len(rows) >= 3
            verdicts.append(f"{pair} shot {acc:.2f} against ≥ {GOALS[pair]} (mean of {len(rows)} seeds): "
                            f"{'met' if ok else 'not met'}")
        lines += ["", "Goals: " + "; ".join(verdicts) + "."]
    if not args.quick:
        lines += ["", CHOICES]
        if "shot" in methods and any(statistics.mean(r[0] for r in results.get((p, "shot"), [(0.0, 0.0)]))
                                     < GOALS[p] for p in args.pairs):
            lines += ["", UNTRIED]
    return "\n".join(lines) + "\n"


def tune(args) -> str:
    """The tuning suite: every TUNING variant on mnist5k → uci-digits and usps (train) → uci-digits,
    scored on the whole uci-digits pool with its labels (transductive, as the pool is the target)."""
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    sources: dict[tuple, Domain] = {}
    scores: dict[tuple[int, str], list[float]] = {}
    source_only: dict[tuple[str, float, str], list[float]] = {}
    for pair, (s, t) in TUNING_PAIRS.items():
        source, target = load(s, args.data, "train"), load(t, args.data, "train")
        pool = unlabelled(target)
        for i, (arch, eps, method, update, config) in enumerate(TUNING):
            for seed in args.seeds:
                key = (pair, arch, eps, seed)
                if key not in sources:
                    src_train, src_val = source_split(source, seed)
                    spec = RECIPE.spec.model_copy(update={"arch": arch, "hidden": 256 if arch == "lenet-bn" else 500})
                    pretrain = RECIPE.pretrain.model_copy(
                        update={"seed": seed, "device": args.device, "label_smoothing": eps})
                    sources[key] = train_classifier(build_model(spec, seed=seed), src_train, src_val, pretrain).model
                    source_only.setdefault((arch, eps, pair), []).append(100 * accuracy(sources[key], target))
                settings, base = RECIPE.methods[method]
                settings = settings.model_copy(update={**update, "seed": seed, "device": args.device})
                data = AdaptationData(None, None, None, pool, source_classes=CLASSES)
                result = get_method(method)().fit(sources[key], data, {**base, **config}, settings)
                acc = 100 * accuracy(result.model, target)
                scores.setdefault((i, pair), []).append(acc)
                print(f"{pair} seed {seed} {arch} ε {eps:g} {method} {update} {config}: {acc:.1f} "
                      f"(best epoch {result.best_epoch})", file=sys.stderr, flush=True)
    seeds = " ".join(map(str, args.seeds))
    lines = [f"## Source-free tuning suite (seeds {', '.join(map(str, args.seeds))})", "",
             f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/source_free.py --tune --seeds {seeds}"
             + (f" --threads {args.threads}" if args.threads != 1 else "") + device_flag(args.device)
             + f" --out benchmarks/RESULTS.md`. Whole run: {(time.perf_counter() - started) / 60:.1f} min.", "",
             "Where `benchmarks/source_free.py`'s recipe was chosen: pairs that are not the reported ones, "
             + ", ".join(TUNING_PAIRS) + " (usps = its train split; uci-digits = scikit-learn's 1,797 8×8 digits, "
             "upsampled to 28×28, a dataset the reported pairs never use). Each variant is the benchmark's recipe "
             "with the change its row names; accuracy (%) on the whole uci-digits pool, which is also the unlabelled "
             "pool (transductive), mean ± std over the seeds. No MNIST or USPS test label, and no label of a "
             "reported target, was used.", "",
             "| source network | label smoothing | method | change to the recipe | "
             + " | ".join(TUNING_PAIRS) + " | mean of both |", "|" + "---|" * (5 + len(TUNING_PAIRS))]
    seen = set()
    for arch, eps, *_ in TUNING:
        if (arch, eps) in seen:
            continue
        seen.add((arch, eps))
        cells = [mean_sd(source_only[(arch, eps, p)]) for p in TUNING_PAIRS]
        both = statistics.mean(statistics.mean(source_only[(arch, eps, p)]) for p in TUNING_PAIRS)
        lines.append(f"| {arch} | {eps:g} | source-only | - | " + " | ".join(cells) + f" | {both:.1f} |")
    for i, (arch, eps, method, update, config) in enumerate(TUNING):
        cells = [mean_sd(scores[(i, p)]) for p in TUNING_PAIRS]
        both = statistics.mean(statistics.mean(scores[(i, p)]) for p in TUNING_PAIRS)
        change = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                           for k, v in {**update, **config}.items())
        settings, base = RECIPE.methods[method]
        is_chosen = (arch == RECIPE.spec.arch and eps == RECIPE.pretrain.label_smoothing
                     and all(getattr(settings, k) == v for k, v in update.items())
                     and all(base.get(k) == v for k, v in config.items()))
        lines.append(f"| {arch} | {eps:g} | {method}{' (chosen)' if is_chosen else ''} | {change} | "
                     + " | ".join(cells) + f" | {both:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke test: subsets, 2-3 epochs per stage")
    p.add_argument("--tune", action="store_true", help="run the tuning suite (TUNING) instead of the benchmark")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    p.add_argument("--methods", nargs="+", choices=list(METHODS))
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path, help="also write the markdown into this RESULTS.md")
    p.add_argument("--threads", type=int, default=1)
    add_device_argument(p)
    args = p.parse_args(argv)
    md = tune(args) if args.tune else benchmark(args)
    print(md)
    if args.out and args.tune:
        write_section(args.out, device_section("source-free-tuning", args.device), md)
    elif args.out:
        write_section(args.out, device_section("source-free" + ("-quick" if args.quick else ""), args.device), md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
