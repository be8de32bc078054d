"""Zero-shot transfer through the digits' attribute table: train on digits 0-6, recognise 7-9 without
a single label of them (DAP and ESZSL), against chance and against the table's own ceiling.

    .venv/bin/python benchmarks/zero_shot.py [--seeds 0 1 2] [--threads 1] [--out benchmarks/RESULTS.md]

For each pair and seed a LeNet is trained on the source's digits 0-6 (the pipeline's pretrain
defaults, early stopping on a source validation split), then ``dap`` and ``eszsl`` are fitted from it
exactly as the adapt stage fits them (ESZSL's γ, λ chosen on pseudo-unseen *seen* classes), over the
target's ten classes. Scores on the target test set (per-class mean accuracy,
:mod:`transferlab.evaluation.zero_shot`):

- ZSL: test samples of 7-9, argmax over 7-9 only (chance 33.3 %);
- GZSL: test samples of 0-9, argmax over all ten; S (seen 0-6), U (unseen 7-9), H = 2SU/(S+U).

**Ceiling**: the same attribute classifier (same frozen source features, same method and
hyperparameter choice) whose attribute predictors / V are fitted on source samples of *all ten*
digits, i.e. with the unseen classes' labels: what is left is the loss of predicting through the
table's bottleneck (and the domain shift), not the loss of never having seen 7-9. Zero-shot
accuracy / ceiling says how much of what the table allows was reached.

Pairs: mnist5k 0-6 → uci-digits 7-9 (the package-shipped data; target test = the pipeline's
content-hash test split) and USPS 0-6 → MNIST 7-9 (``../shared/data``; target test = MNIST's test set).
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

from benchmarks.results import machine, write_section
from transferlab.data import (
    Domain,
    DomainSpec,
    harmonise,
    load_domain,
    split_source,
    split_target,
)
from transferlab.data.attributes import read_attribute_table
from transferlab.evaluation.zero_shot import zero_shot_scores
from transferlab.methods import AdaptationData, get_method
from transferlab.methods.dap import binarise, dap_log_scores, fit_attribute_classifiers
from transferlab.methods.eszsl import EszslConfig, choose_gamma_lambda, fit_eszsl
from transferlab.methods.zero_shot import features_of
from transferlab.models import ModelSpec, build_model
from transferlab.training import TrainSettings, predict_logits, train_classifier

DIGITS = [str(i) for i in range(10)]
SEEN, UNSEEN = DIGITS[:7], DIGITS[7:]
PRETRAIN = TrainSettings(epochs=8, batch_size=64, lr=1e-3, weight_decay=5e-4, patience=3)  # params.yaml's
METHODS = ("dap", "eszsl")


def _load(spec: DomainSpec) -> Domain:
    return harmonise(load_domain(spec), 28, 1)


def pairs(data: Path) -> list[tuple[str, DomainSpec, DomainSpec, DomainSpec | None]]:
    """(name, source (all ten digits; the seen ones are kept for training), target, target test or None)."""
    usps = DomainSpec(name="usps", path=str(data / "usps"), split="train")
    return [("mnist5k 0-6 → uci-digits 7-9", DomainSpec(name="mnist5k"), DomainSpec(name="uci-digits"), None),
            ("USPS 0-6 → MNIST 7-9", usps, DomainSpec(name="mnist", path=str(data / "MNIST"), split="test"),
             DomainSpec(name="mnist", path=str(data / "MNIST"), split="test"))]


def _classes(domain: Domain, names: list[str]) -> Domain:
    from transferlab.data import select_classes

    return select_classes(domain, names)


def ceiling_scores(model, full_source: Domain, table, test_x: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Scores over the ten digits of both methods fitted on source samples of all ten (the ceiling)."""
    f, y = features_of(model, full_source.x), full_source.y
    sig = table.signatures(DIGITS)
    ft = features_of(model, test_x)
    config = EszslConfig()
    gamma, lam, _, _ = choose_gamma_lambda(f, y, sig, config.grid, config.folds, seed)
    v = fit_eszsl(f, y, sig, gamma, lam)
    binary = binarise(sig)
    w, b, mask = fit_attribute_classifiers(f, binary[y], 1.0, 500)
    z = ft @ w.T + b
    logp1, logp0 = torch.nn.functional.logsigmoid(torch.from_numpy(z)).numpy(), \
        torch.nn.functional.logsigmoid(torch.from_numpy(-z)).numpy()
    return {"eszsl": ft @ v @ sig.T, "dap": dap_log_scores(logp1, logp0, binary, binary.mean(0), mask)}


def run_one(name: str, source_spec, target_spec, test_spec, seed: int, table) -> dict:
    started = time.perf_counter()
    full_source = _load(source_spec)
    source = _classes(full_source, SEEN)
    train, val = split_source(source, 0.1, seed)
    spec = ModelSpec(arch="lenet", image_size=28, num_classes=len(SEEN), classes=SEEN)
    model = train_classifier(build_model(spec, seed=seed), train, val, PRETRAIN.model_copy(update={"seed": seed})).model
    target = _load(target_spec)
    test = _load(test_spec) if test_spec is not None else split_target(target, 0, 0.3, seed).test
    # The pool a method may see has no labels at all (zeros); zero-shot methods do not read it either.
    pool = Domain("pool", target.x[:10], np.zeros(10, dtype=np.int64), tuple(target.classes))
    data = AdaptationData(train, val, None, pool, class_attributes=table)
    out = {}
    for method in METHODS:
        fitted = get_method(method)().fit(model, data, {}, PRETRAIN.model_copy(update={"seed": seed}))
        out[method] = zero_shot_scores(predict_logits(fitted.model, test.x), test.y, test.classes, SEEN)
        out[method]["how"] = fitted.checkpoint_criterion
    seen_rows = full_source.subset(np.flatnonzero(np.isin(full_source.y, range(10))))
    for method, scores in ceiling_scores(model, seen_rows, table, test.x, seed).items():
        out[f"{method} ceiling"] = zero_shot_scores(scores, test.y, test.classes, SEEN)
    print(f"{name} seed={seed}: " + ", ".join(f"{m} U {100 * r['unseen']:.1f} H {100 * r.get('harmonic_mean', 0):.1f}"
                                               for m, r in out.items()) + f" ({time.perf_counter() - started:.0f} s)",
          file=sys.stderr)
    return out


def _cell(values: list[float]) -> str:
    mean = 100 * statistics.mean(values)
    return f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else f"{mean:.1f}"


def table_markdown(results: dict, args, minutes: float) -> str:
    lines = ["## Zero-shot: digits 0-6 → 7-9 through the attribute table (`benchmarks/zero_shot.py`)", "",
             f"Command: `.venv/bin/python benchmarks/zero_shot.py --seeds {' '.join(map(str, args.seeds))} "
             f"--threads {args.threads}`; {minutes:.1f} min on {machine()} (AMD EPYC, 2 cores shared with other "
             "jobs at the time). Seeds " + ", ".join(map(str, args.seeds)) + " (source LeNet training + ESZSL's "
             "class folds); CPU mode; table `builtin:digits`.", "",
             ("Per-class mean accuracy (%), mean ± std over seeds. ZSL: 7-9 among 7-9 (chance 33.3). GZSL: among all "
              "ten, S on 0-6, U on 7-9, H their harmonic mean (chance 10 per class). *Ceiling*: the same method with "
              "its attribute predictors / V fitted on source samples of all ten digits (i.e. with the unseen "
              "classes' labels), same frozen features: the loss due to the table's bottleneck alone."), "",
             "| pair | method | ZSL unseen | GZSL S | GZSL U | GZSL H | ceiling ZSL | ceiling H |",
             "|---|---|---|---|---|---|---|---|"]
    for pair, runs in results.items():
        for method in METHODS:
            def col(key, who=method, runs=runs):
                return _cell([r[who][key] for r in runs])
            lines.append(f"| {pair} | {method} | {col('unseen')} | {col('gzsl_seen')} | {col('gzsl_unseen')} | "
                         f"{col('harmonic_mean')} | {col('unseen', method + ' ceiling')} | "
                         f"{col('harmonic_mean', method + ' ceiling')} |")
        lines.append(f"| {pair} | chance | 33.3 | 10.0 | 10.0 | 10.0 | 33.3 | 10.0 |")
    lines += ["", "ESZSL's γ, λ per run (chosen on pseudo-unseen seen classes, never on 7-9): " + "; ".join(
        f"{pair} seed {s}: {r['eszsl']['how'].split('; ')[-1].split(' by')[0]}"
        for pair, runs in results.items() for s, r in zip(args.seeds, runs))]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--pairs", type=int, nargs="+", default=None, help="indices of the pairs to run")
    parser.add_argument("--out", type=Path, default=None, help="write the table into this RESULTS.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from threadpoolctl import (
        threadpool_limits,  # numpy's BLAS (ESZSL's solves) too, not only torch
    )

    threadpool_limits(args.threads)
    table = read_attribute_table("builtin:digits")
    started = time.perf_counter()
    results = {}
    for i, (name, source, target, test) in enumerate(pairs(args.data)):
        if args.pairs is not None and i not in args.pairs:
            continue
        results[name] = [run_one(name, source, target, test, seed, table) for seed in args.seeds]
    markdown = table_markdown(results, args, (time.perf_counter() - started) / 60)
    print(markdown)
    if args.out:
        write_section(args.out, "zero-shot", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
