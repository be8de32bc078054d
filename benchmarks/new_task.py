"""Transfer to a new task: digits 0-4 as the source, digits 5-9 as the target (new classes), on MNIST
itself and on USPS (new classes and a new domain), with k labels per new class.

    .venv/bin/python benchmarks/new_task.py --part tasks [--suite heldout|tuning] [--seeds 0 1 2]
        [--ks 1 5 10 50] [--out benchmarks/RESULTS.md]
    .venv/bin/python benchmarks/new_task.py --part imports [--out benchmarks/RESULTS.md]
    .venv/bin/python benchmarks/source_free.py ...     (the source-free part: shot and tent)

``--part tasks``: for each pair, training seed and k, the source LeNet is trained on the source
classes (early stopping on a source validation split), then every method that can run on a new
task is trained from it (layer transfer at k = 1 and 2 frozen blocks; k = 3 is the linear probe),
and the pipeline's selection chooses one in rule mode and in trial mode, from the target's
labelled samples and the similarity report only. Accuracy is on the target's test split (MNIST's
or USPS's own test set, classes 5-9), which no choice sees. Regret = the best method's mean over
seeds minus the chosen one's (the choice may differ by seed); the gain over target-only is a paired
bootstrap over test samples with each sample's correctness averaged over the seeds.

Two suites: ``heldout`` (the pairs above: what RESULTS reports) and ``tuning`` (mnist5k 5-9 → 0-4
and mnist5k 5-9 → uci-digits 0-4, from the data shipped in packages): the selection's thresholds
may be looked at on the tuning suite only.

``--part imports``: the real pipeline (``dvc repro`` in fresh projects) trains a torchvision
ResNet-18 in place on the default pair, then imports that same model three ways (its MLflow
registry version, its weights folder, and its weights saved as a torchvision state dict) and checks
that every accuracy the evaluation reports is reproduced exactly.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import machine, write_section  # noqa: E402
from transferlab.data import Domain, DomainSpec, harmonise, load_domain, split_source, split_target  # noqa: E402
from transferlab.evaluation import transfer_gain  # noqa: E402
from transferlab.methods import AdaptationData, applicable_methods, get_method  # noqa: E402
from transferlab.models import ModelSpec, build_model  # noqa: E402
from transferlab.selection import SelectionConfig, select_by_rules, select_by_trials  # noqa: E402
from transferlab.similarity import SimilarityConfig, similarity_report  # noqa: E402
from transferlab.training import TrainSettings, predict_logits, train_classifier  # noqa: E402

LOW, HIGH = [str(i) for i in range(5)], [str(i) for i in range(5, 10)]
# The pipeline's defaults (params.yaml: pretrain, adapt.train), so the numbers are what a user gets.
PRETRAIN = TrainSettings(epochs=8, batch_size=64, lr=1e-3, weight_decay=5e-4, patience=3)
ADAPT = TrainSettings(epochs=8, batch_size=64, lr=1e-3, weight_decay=5e-4, patience=3)
SIMILARITY = SimilarityConfig(permutations=100, max_samples=1000, layer_max_samples=500)


@dataclass(frozen=True)
class Pair:
    name: str
    source: DomainSpec
    target: DomainSpec
    target_test: DomainSpec | None  # None: the pipeline's own content-hash test split of ``target``


def pairs(suite: str, data: Path) -> list[Pair]:
    if suite == "tuning":
        return [Pair("mnist5k 5-9 → mnist5k 0-4", DomainSpec(name="mnist5k", classes=HIGH),
                     DomainSpec(name="mnist5k", classes=LOW), None),
                Pair("mnist5k 5-9 → uci-digits 0-4", DomainSpec(name="mnist5k", classes=HIGH),
                     DomainSpec(name="uci-digits", classes=LOW), None)]
    mnist = {s: DomainSpec(name="mnist", path=str(data / "MNIST"), split=s) for s in ("train", "test")}
    usps = {s: DomainSpec(name="usps", path=str(data / "usps"), split=s) for s in ("train", "test")}
    low = mnist["train"].model_copy(update={"classes": LOW})
    return [Pair("MNIST 0-4 → MNIST 5-9", low, mnist["train"].model_copy(update={"classes": HIGH}),
                 mnist["test"].model_copy(update={"classes": HIGH})),
            Pair("MNIST 0-4 → USPS 5-9", low, usps["train"].model_copy(update={"classes": HIGH}),
                 usps["test"].model_copy(update={"classes": HIGH}))]


def _load(spec: DomainSpec) -> Domain:
    return harmonise(load_domain(spec), 28, 1)


def target_sets(pair: Pair, k: int, seed: int) -> tuple[Domain, Domain, Domain]:
    """(labelled: k per class, unlabelled pool without its labels, test). With a test set of its own
    the whole target train split is the pool the k labels are drawn from; else the pipeline's split."""
    target = _load(pair.target)
    if pair.target_test is None:
        splits = split_target(target, k, 0.3, seed)
        labelled, rest, test = splits.labelled, splits.unlabelled, splits.test
    else:
        rng = np.random.default_rng(seed)
        idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(target.y == c), k, replace=False)
                                      for c in range(target.num_classes)]))
        labelled, rest = target.subset(idx), target.subset(np.setdiff1d(np.arange(len(target)), idx))
        test = _load(pair.target_test)
    hidden = Domain(rest.name, rest.x, np.zeros(len(rest), dtype=np.int64), rest.classes)
    return labelled, hidden, test


def arms(data: AdaptationData, model) -> list[tuple[str, dict]]:
    """Every method that can run on this new task; layer transfer at each depth the rules may choose."""
    out = []
    for name in applicable_methods(data, model):
        if name == "layer-transfer":
            out += [(name, {"k": k}) for k in range(1, len(model.blocks))]
        else:
            out.append((name, {}))
    return out


def label(method: str, settings: dict) -> str:
    return method + ("(" + ", ".join(f"{k}={v}" for k, v in sorted(settings.items())) + ")" if settings else "")


def predictions(model, test: Domain) -> np.ndarray:
    return predict_logits(model, test.x).argmax(1)


def scenario(pair: Pair, source: Domain, k: int, seed: int, cache: dict) -> dict:
    """One pair, label budget and training seed: every arm's test accuracy and predictions, and what
    rule mode and trial mode chose (from the labelled target and the similarity report only)."""
    started = time.perf_counter()
    key = (pair.source.model_dump_json(), seed)
    if key not in cache:  # the source model depends on the source and the seed, not on k or the target
        train, val = split_source(source, 0.1, seed)
        spec = ModelSpec(arch="lenet", image_size=28, num_classes=source.num_classes, classes=list(source.classes))
        model = train_classifier(build_model(spec, seed=seed), train, val, PRETRAIN.model_copy(update={"seed": seed}))
        cache.clear()
        cache[key] = (train, val, model.model)
    train, val, model = cache[key]
    labelled, pool, test = target_sets(pair, k, seed)
    data = AdaptationData(train, val, labelled, pool)
    settings = ADAPT.model_copy(update={"seed": seed})
    report = similarity_report(model, train, pool, labelled, config=SIMILARITY.model_copy(update={"seed": seed}))
    rule = select_by_rules(report, k, data.n_target_classes, SelectionConfig(seed=seed))
    t0 = time.perf_counter()
    trial = select_by_trials(model, data, settings, SelectionConfig(mode="trial", seed=seed), report=report)
    trial_s = time.perf_counter() - t0
    accs, preds, sweep_s = {}, {}, 0.0
    for method, config in arms(data, model) + [(rule.method, rule.settings), (trial.method, trial.settings)]:
        name = label(method, config)
        if name in accs:
            continue
        t0 = time.perf_counter()
        fitted = get_method(method)().fit(model, data, dict(config), settings).model
        sweep_s += time.perf_counter() - t0
        preds[name] = predictions(fitted, test)
        accs[name] = float((preds[name] == test.y).mean())
    print(f"{pair.name} k={k} seed={seed}: rule {label(rule.method, rule.settings)}, trial "
          f"{label(trial.method, trial.settings)}; " + ", ".join(f"{n} {100 * a:.1f}" for n, a in accs.items())
          + f" ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return {"accs": accs, "preds": preds, "y": test.y, "rule": label(rule.method, rule.settings),
            "trial": label(trial.method, trial.settings), "trial_cost": trial.cost.get("fraction_of_full_sweep", 0.0),
            "trial_s": trial_s, "sweep_s": sweep_s, "depth": (report.get("depth") or {}).get("reason")}


def summarise(runs: list[dict]) -> dict:
    """Seed-averaged numbers of one (pair, k): per-arm means, each mode's accuracy and regret against the
    best arm's mean, and the gain of each mode's choice over target-only (paired bootstrap)."""
    names = [n for n in runs[0]["accs"] if all(n in r["accs"] for r in runs)]
    mean = {n: statistics.mean(r["accs"][n] for r in runs) for n in names}
    sd = {n: statistics.stdev([r["accs"][n] for r in runs]) if len(runs) > 1 else 0.0 for n in names}
    best = max(mean, key=mean.get)
    out = {"mean": mean, "sd": sd, "best": best, "seeds": len(runs)}
    for mode in ("rule", "trial"):
        acc = statistics.mean(r["accs"][r[mode]] for r in runs)
        gain = transfer_gain(runs[0]["y"], np.stack([r["preds"][r[mode]] for r in runs]),
                             {"target-only": np.stack([r["preds"]["target-only"] for r in runs])},
                             chosen=mode, n_boot=2000, seed=0)
        out[mode] = {"choices": [r[mode] for r in runs], "acc": acc, "regret": mean[best] - acc,
                     "gain": gain["estimate"], "ci": gain["ci"]}
    out["trial_cost"] = statistics.mean(r["trial_cost"] for r in runs)
    out["time_fraction"] = statistics.mean(r["trial_s"] / r["sweep_s"] for r in runs)
    return out


def _choice(entry: dict) -> str:
    choices = list(dict.fromkeys(entry["choices"]))
    return choices[0] if len(choices) == 1 else " / ".join(choices)


def tasks_table(results: dict, args, minutes: float) -> str:
    lines = [f"## New task: digits 0-4 → 5-9 ({args.suite} suite, {len(args.seeds)} seeds)", "",
             f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/new_task.py --part tasks --suite "
             f"{args.suite} --seeds {' '.join(map(str, args.seeds))} --ks {' '.join(map(str, args.ks))} "
             f"--out benchmarks/RESULTS.md` ({minutes:.0f} min). Source LeNet and adaptation with the pipeline's "
             "default schedules (params.yaml); accuracy (%) on the target's test split, mean over training seeds "
             f"{', '.join(map(str, args.seeds))}; regret = best arm's mean − the choice's; gain over target-only "
             "with a 95 % paired-bootstrap CI over test samples (correctness averaged over seeds).", "",
             "| pair | k | target-only | linear-probe | best arm | rule choice | acc | gain [CI] | regret "
             "| trial choice | acc | gain [CI] | regret | trial cost |", "|" + "---|" * 14]
    for (pair, k), s in results.items():
        m = s["mean"]
        cells = [pair, str(k), f"{100 * m['target-only']:.1f}", f"{100 * m.get('linear-probe', float('nan')):.1f}",
                 f"{s['best']} {100 * m[s['best']]:.1f}"]
        for mode in ("rule", "trial"):
            e = s[mode]
            cells += [_choice(e), f"{100 * e['acc']:.1f}",
                      f"{100 * e['gain']:+.1f} [{100 * e['ci'][0]:+.1f}, {100 * e['ci'][1]:+.1f}]", f"{100 * e['regret']:.1f}"]
        cells.append(f"{100 * s['trial_cost']:.0f} % epochs, {100 * s['time_fraction']:.0f} % time")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *goal_lines(results), "", "Every arm (mean ± sd over seeds, %):", ""]
    names = list(dict.fromkeys(n for s in results.values() for n in s["mean"]))
    lines += ["| arm | " + " | ".join(f"{p} k={k}" for p, k in results) + " |", "|" + "---|" * (len(results) + 1)]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(f"{100 * s['mean'][n]:.1f} ± {100 * s['sd'][n]:.1f}" if n in s["mean"]
                                              else "-" for s in results.values()) + " |")
    return "\n".join(lines) + "\n"


def goal_lines(results: dict) -> list[str]:
    out = []
    few = {key: s for key, s in results.items() if key[1] <= 10}
    for mode in ("rule", "trial"):
        beats = [key for key, s in few.items() if s[mode]["ci"][0] > 0]
        regret = statistics.mean(s[mode]["regret"] for s in results.values())
        out.append(f"- {mode} mode: beats target-only with a CI above zero in {len(beats)} of {len(few)} scenarios with "
                   f"k ≤ 10 (goal: all: {'met' if len(beats) == len(few) else 'not met'}); mean regret "
                   f"{100 * regret:.2f} points (goal ≤ 1: {'met' if regret <= 0.01 else 'not met'}).")
    return out


def run_tasks(args) -> str:
    started = time.perf_counter()
    results, cache = {}, {}
    for pair in pairs(args.suite, args.data):
        source = _load(pair.source)
        for k in args.ks:
            runs = [scenario(pair, source, k, seed, cache) for seed in args.seeds]
            results[(pair.name, k)] = summarise(runs)
    return tasks_table(results, args, (time.perf_counter() - started) / 60)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["tasks", "imports"], default="tasks")
    p.add_argument("--suite", choices=["heldout", "tuning"], default="heldout")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--ks", type=int, nargs="+", default=[1, 5, 10, 50])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.part == "tasks":
        md, section = run_tasks(args), "new-task" if args.suite == "heldout" else "new-task-tuning"
    else:
        from benchmarks.model_imports import run_imports

        md, section = run_imports(args), "new-task-imports"
    print(md)
    if args.out:
        write_section(args.out, section, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
