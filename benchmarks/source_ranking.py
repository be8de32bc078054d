"""Which of several sources transfers best? Digits targets, each with several candidate sources:
the ranking of :mod:`transferlab.similarity.sources` (and each anchor alone) against the oracle,
the target test accuracy after the default adaptation (DANN, no target labels) from each source.

    .venv/bin/python benchmarks/source_ranking.py [--targets NAME ...] [--labels 5] [--oracle-runs 1]
                                                  [--threads 1] [--jobs 1] [--out benchmarks/RESULTS.md]

Sources: mnist5k, USPS (train), UCI digits, and shifts of them (rotated, inverted, colour-background
MNIST); targets: MNIST and USPS test splits, UCI digits and shifted versions of them.
Each target's candidates are every source except one made from the very same data. Each source model
is a LeNet trained once on its source (early stopping on its own validation split); per target and
candidate, the measurements read the target's unlabelled pool and, for the labelled anchors, ``--labels``
labelled target samples per class; the oracle adapts from each candidate with DANN (the pipeline's
default unsupervised method) and scores it on the target test split, which only this audit reads.
Scores: Spearman ρ and Kendall τ (scipy) between a score and the oracle accuracies per target, mean
over targets; top-1 hit rate (the score's best candidate is the oracle's best); mean regret (points
lost to the oracle's best by taking the score's best).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import tempfile
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import machine, write_section  # noqa: E402
from transferlab.data import (DomainSpec, ShiftSpec, harmonise, load_domain, split_source, split_target,  # noqa: E402
                              stratified_subsample)
from transferlab.data.adaptation import SourceCandidate  # noqa: E402
from transferlab.methods import AdaptationData, get_method  # noqa: E402
from transferlab.models import ModelSpec, build_model, load_model, save_model  # noqa: E402
from transferlab.similarity import SimilarityConfig, measure_source, mmd_test, rank_sources  # noqa: E402
from transferlab.training import TrainSettings, accuracy, train_classifier  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
N_SOURCE, N_TARGET = 1500, 1200
PRETRAIN = TrainSettings(epochs=5, batch_size=64, lr=1e-3, patience=3, max_steps_per_epoch=30)
ADAPT = TrainSettings(epochs=4, batch_size=64, lr=5e-4, patience=6, max_steps_per_epoch=30)
CONFIG = SimilarityConfig(permutations=50, max_samples=500)
# name -> (higher-is-better score from one candidate's measurements, needs target labels)
ANCHORS = {
    "ours (label-free: error bound)": (None, False),
    "LogME (= ours with labels)": (lambda m: m["transferability"]["logme"], True),
    "SFDA": (lambda m: m["transferability"]["sfda"], True),
    "H-score": (lambda m: m["transferability"]["hscore"], True),
    "LEEP": (lambda m: m["transferability"]["leep"], True),
    "− A-distance, class probabilities": (lambda m: -m["output_a_distance"], False),
    "− normalised MMD², class probabilities": (lambda m: -m["output_mmd_normalised"], False),
    "− normalised MMD², own features": (lambda m: -m["mmd"]["normalised"], False),
    "− A-distance, own features": (lambda m: -m["a_distance"], False),
    "− normalised MMD², input pixels (common space)": (lambda m: -m["input_mmd_normalised"], False),
    "source validation accuracy": (lambda m: m["source_val_accuracy"], False),
    "information maximisation on the target (ours when a candidate is a model)":
        (lambda m: m["information_maximisation"], False),
}


def _spec(name: str, split: str = "all", *shifts: tuple[str, float], data: Path = DATA) -> DomainSpec:
    path = {"mnist": data / "MNIST", "usps": data / "usps"}.get(name)
    return DomainSpec(name=name, path=str(path) if path else None, split=split,
                      shifts=[ShiftSpec(name=n, severity=s, seed=0) for n, s in shifts])


def make_suite(data: Path = DATA) -> tuple[dict, dict]:
    sources = {
        "mnist5k": _spec("mnist5k", data=data),
        "usps": _spec("usps", "train", data=data),
        "uci-digits": _spec("uci-digits", data=data),
        "mnist5k rotate 0.5": _spec("mnist5k", "all", ("rotate", 0.5), data=data),
        "mnist5k invert": _spec("mnist5k", "all", ("invert", 1.0), data=data),
        "mnist5k colour-bg 0.7": _spec("mnist5k", "all", ("colour-background", 0.7), data=data),
    }
    targets = {
        "mnist": _spec("mnist", "test", data=data),
        "usps": _spec("usps", "test", data=data),
        "uci-digits": _spec("uci-digits", data=data),
        "mnist rotate 0.3": _spec("mnist", "test", ("rotate", 0.3), data=data),
        "mnist invert 0.8": _spec("mnist", "test", ("invert", 0.8), data=data),
        "usps rotate 0.4": _spec("usps", "test", ("rotate", 0.4), data=data),
        "mnist rescale 0.5": _spec("mnist", "test", ("rescale", 0.5), data=data),
        "uci-digits invert": _spec("uci-digits", "all", ("invert", 1.0), data=data),
    }
    return sources, targets


def _candidates(target_spec: DomainSpec, sources: dict) -> list[str]:
    """Every source but one made from the very data of the target (same dataset, split and shifts)."""
    return [name for name, spec in sources.items() if spec != target_spec]


def _domain(spec: DomainSpec, n: int, seed: int):
    return harmonise(stratified_subsample(load_domain(spec), n, seed), 28, 1)


def _split_source(spec: DomainSpec):
    return split_source(_domain(spec, N_SOURCE, 0), 0.15, 0)


def _source_job(job: tuple) -> tuple[str, float]:
    """Train one source's LeNet (seed 0) and save it under ``folder``; returns (name, val accuracy)."""
    name, spec, folder, threads = job
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    train, val = _split_source(spec)
    model = train_classifier(build_model(ModelSpec(arch="lenet", image_size=28, num_classes=10), seed=0),
                             train, val, PRETRAIN).model
    save_model(model, Path(folder) / _slug(name))
    acc = accuracy(model, val)
    print(f"source {name:24s} val acc {100 * acc:5.1f} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
    return name, acc


def _slug(name: str) -> str:
    return name.replace(" ", "_")


def _target_job(job: tuple) -> dict:
    """One target in this process or a worker: the candidates' models come from ``folder``."""
    name, spec, candidates, source_specs, val_accs, folder, labels, oracle_runs, threads = job
    torch.set_num_threads(threads)
    trained = {}
    for source in candidates:
        train, val = _split_source(source_specs[source])
        trained[source] = (load_model(Path(folder) / _slug(source)), train, val, val_accs[source])
    return run_target(name, spec, trained, candidates, labels, oracle_runs)


def run_target(name: str, spec: DomainSpec, trained: dict, candidates: list[str], labels: int,
               oracle_runs: int) -> dict:
    t0 = time.perf_counter()
    splits = split_target(_domain(spec, N_TARGET, 1), labels, 0.3, 0)
    measured, oracle = [], {}
    dann = get_method("dann")
    for source in candidates:
        model, train, val, val_acc = trained[source]
        m = measure_source(model, train, splits.unlabelled, splits.labelled, source_val_accuracy=val_acc,
                           config=CONFIG)
        flat = lambda d: np.asarray(d.x[:CONFIG.max_samples]).reshape(min(len(d), CONFIG.max_samples), -1)  # noqa: E731
        m["input_mmd_normalised"] = mmd_test(flat(train), flat(splits.unlabelled), n_permutations=20).normalised
        measured.append({"name": source, **m})
        data = AdaptationData(train, val, None, splits.unlabelled)
        accs = [accuracy(dann().fit(model, data, None, ADAPT.model_copy(update={"seed": 1000 * j})).model,
                         splits.test) for j in range(oracle_runs)]
        oracle[source] = statistics.mean(accs)
    label_free = rank_sources([{**m, "transferability": None} for m in measured])
    multi = multi_source(trained, label_free["chosen"], candidates, splits)
    scores = {"ours (label-free: error bound)": {r["name"]: -r["score"] for r in label_free["ranking"]}}
    for anchor, (fn, _) in ANCHORS.items():
        if fn is not None:
            scores[anchor] = {m["name"]: fn(m) for m in measured}
    print(f"target {name:20s} oracle " + ", ".join(f"{s} {100 * a:.1f}" for s, a in oracle.items())
          + f"; ours picks {label_free['chosen']} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
    return {"target": name, "oracle": oracle, "scores": scores, "ours": label_free["chosen"], "multi": multi,
            "reasons": [r["reason"] for r in label_free["ranking"]], "seconds": time.perf_counter() - t0}


def multi_source(trained: dict, chosen: str, candidates: list[str], splits) -> dict:
    """multi-source from the ranking's first candidate's model over every candidate, weighted by the
    bound and as the plain union: test accuracy each, and the bound's weight per candidate."""
    model, train, val, _ = trained[chosen]
    others = tuple(SourceCandidate.of(s, trained[s][1], trained[s][2]) for s in candidates if s != chosen)
    data = AdaptationData(train, val, None, splits.unlabelled, other_sources=others)
    out, names = {}, [chosen, *(o.name for o in others)]
    for weighting in ("bound", "union"):
        result = get_method("multi-source")().fit(model, data, {"weighting": weighting}, ADAPT)
        out[weighting] = accuracy(result.model, splits.test)
        if weighting == "bound":
            out["weights"] = {n: result.history[-1][f"source_weight_{i}"] for i, n in enumerate(names)}
    return out


def agreement(score: dict[str, float], oracle: dict[str, float]) -> dict:
    names = list(oracle)
    s, o = [score[n] for n in names], [oracle[n] for n in names]
    pick = max(names, key=lambda n: (score[n], -names.index(n)))
    rho, tau = spearmanr(s, o).statistic, kendalltau(s, o).statistic
    return {"rho": 0.0 if np.isnan(rho) else float(rho), "tau": 0.0 if np.isnan(tau) else float(tau),
            "hit": oracle[pick] == max(o), "regret": 100 * (max(o) - oracle[pick]), "pick": pick}


def _top(weights: dict[str, float]) -> str:
    return ", ".join(f"{n} {w:.2f}" for n, w in sorted(weights.items(), key=lambda kv: -kv[1])[:2])


def multi_summary(rows: list[dict]) -> str:
    """multi-source against the ranking's single pick and the oracle's best single source."""
    pick = [r["oracle"][r["ours"]] for r in rows]
    best = [max(r["oracle"].values()) for r in rows]
    bound, union = [r["multi"]["bound"] for r in rows], [r["multi"]["union"] for r in rows]
    wins = sum(b > p for b, p in zip(bound, pick))
    return (f"multi-source (weights from the bound, CORAL alignment, the ranking's first candidate's model as start) "
            f"over the {len(rows)} targets: mean {100 * statistics.mean(bound):.1f} % against {100 * statistics.mean(pick):.1f} % "
            f"for DANN from the ranking's pick and {100 * statistics.mean(best):.1f} % for the oracle's best single source; "
            f"above the pick on {wins} of {len(rows)} targets; the plain union (every sample once) "
            f"{100 * statistics.mean(union):.1f} %.")


def render(rows: list[dict], args, seconds: float) -> str:
    per_target = ["| target | candidates | oracle best (acc) | worst (acc) | ours picks (acc) | LogME picks (acc) "
                  "| multi-source, bound weights | plain union | largest weights |",
                  "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        o = r["oracle"]
        best, worst = max(o, key=o.get), min(o, key=o.get)
        logme = agreement(r["scores"]["LogME (= ours with labels)"], o)["pick"]
        per_target.append(f"| {r['target']} | {len(o)} | {best} ({100 * o[best]:.1f}) | {worst} ({100 * o[worst]:.1f}) "
                          f"| {r['ours']} ({100 * o[r['ours']]:.1f}) | {logme} ({100 * o[logme]:.1f}) "
                          f"| {100 * r['multi']['bound']:.1f} | {100 * r['multi']['union']:.1f} | {_top(r['multi']['weights'])} |")
    table = ["| score | labels | mean Spearman ρ | mean Kendall τ | top-1 hits | mean regret (points) |",
             "|---|---|---|---|---|---|"]
    for anchor, (_, needs_labels) in ANCHORS.items():
        a = [agreement(r["scores"][anchor], r["oracle"]) for r in rows]
        table.append(f"| {anchor} | {f'{args.labels} / class' if needs_labels else 'none'} "
                     f"| {statistics.mean(x['rho'] for x in a):+.2f} | {statistics.mean(x['tau'] for x in a):+.2f} "
                     f"| {sum(x['hit'] for x in a)} / {len(a)} | {statistics.mean(x['regret'] for x in a):.1f} |")
    command = ("`.venv/bin/python benchmarks/source_ranking.py --threads 1"
               + (f" --labels {args.labels}" if args.labels != 5 else "")
               + (f" --oracle-runs {args.oracle_runs}" if args.oracle_runs != 1 else "")
               + (f" --jobs {args.jobs}" if args.jobs != 1 else "")
               + (" --targets " + " ".join(f"'{t}'" for t in args.targets) if args.targets else "")
               + " --out benchmarks/RESULTS.md`")
    return "\n".join([
        f"## Ranking candidate sources (`benchmarks/source_ranking.py`, {len(rows)} targets)", "",
        f"Machine: {machine()}; shared with other jobs at the time (load average {os.getloadavg()[0]:.0f} at the "
        "end). Command: "
        f"{command}; {seconds / 60:.0f} min wall. "
        f"Seed 0 everywhere (data subsamples, splits, initial weights); CPU. Sources {N_SOURCE} images, targets "
        f"{N_TARGET} (30 % test by content hash, {args.labels} labelled per class for the labelled scores only), "
        f"28×28 grey, LeNet; pretraining ≤ {PRETRAIN.epochs}×{PRETRAIN.max_steps_per_epoch} steps, DANN "
        f"≤ {ADAPT.epochs}×{ADAPT.max_steps_per_epoch} steps, {args.oracle_runs} training run(s) per candidate. "
        "Oracle: target test accuracy after DANN from each candidate (only this audit reads test labels). "
        "Higher score = ranked higher; ρ, τ per target over its candidates, then averaged.", "",
        *table, "", *per_target, "", multi_summary(rows), ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", help="default: all")
    parser.add_argument("--labels", type=int, default=5, help="labelled target samples per class (labelled scores)")
    parser.add_argument("--oracle-runs", type=int, default=1, help="DANN runs per candidate (accuracy = mean)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1, help="targets (and sources) run at once, one process each")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    sources, targets = make_suite(args.data)
    chosen = args.targets or list(targets)
    # spawn, not fork: a forked child inherits torch's thread pool in an undefined state.
    with tempfile.TemporaryDirectory() as folder, \
            (ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) if args.jobs > 1
             else contextlib.nullcontext()) as pool:
        run = pool.map if pool else map
        val_accs = dict(run(_source_job, [(n, spec, folder, args.threads) for n, spec in sources.items()]))
        jobs = [(t, targets[t], _candidates(targets[t], sources), sources, val_accs, folder, args.labels,
                 args.oracle_runs, args.threads) for t in chosen]
        rows = list(run(_target_job, jobs))
    markdown = render(rows, args, time.perf_counter() - started)
    print(markdown)
    if args.out:
        write_section(args.out, "source-ranking", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
