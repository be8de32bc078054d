"""Transitive transfer: direct adaptation against adaptation in hops through an intermediate domain,
and the pipeline's rule (:mod:`transferlab.selection.transitive`) against the oracle.

Scenarios (each domain from disjoint images where they share a dataset):

- ``rotate``: mnist5k split in three disjoint thirds: source unrotated, intermediate rotated by up
  to ±36° (severity 0.4), target by up to ±72° (0.8) (:mod:`transferlab.data.shifts`);
- ``colour``: the same thirds under colour-background at severity 0 (grey made RGB), 0.3 and 0.6;
- ``digits``: mnist5k → uci-digits through USPS (all 9,298, a seeded random 2,000 of them),
  USPS read through the registry from ``--data`` (default ../shared/data);
- ``rotate-offpath`` (only with ``--scenarios rotate-offpath``, its own RESULTS section): ``rotate``
  with the intermediate inverted instead of rotated, a stepping stone off the path: the control
  where the rule should adapt directly.

The target is split once (data seed 0): 70 % unlabelled pool, 30 % test. Per training seed: LeNet
pretrained on the source (85/15 split, early stopping on source validation); the chain distances
(:func:`transferlab.similarity.chain.chain_distances`) on 500 samples per domain in the source model's
penultimate features, and the MMD test of source against target pool (for its p-value); the rule's
decision. Then, for each hop method (gradual self-training, Kumar et al. 2020; DANN with the
labelled source and the next domain's unlabelled inputs): *direct* = one hop source model → target
pool; *transitive* = source model → intermediate pool → target pool. Accuracy is measured on the
target test split only here, after every choice was made without it; the intermediate pools'
labels are replaced by -1 before any method sees them. The *oracle* is whichever of direct /
transitive scored higher on the test split: only this benchmark reads those labels.

    python benchmarks/transitive.py --threads 1 [--seeds 0 1 2] [--quick] [--out benchmarks/RESULTS.md]
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
sys.path.insert(0, str(ROOT / "benchmarks"))

import results

from transferlab.data import (
    Domain,
    DomainSpec,
    ShiftSpec,
    apply_shift,
    harmonise,
    load_domain,
)
from transferlab.data.adaptation import AdaptationData
from transferlab.methods import get_method
from transferlab.models import ModelSpec, build_model
from transferlab.selection.transitive import TransitiveConfig, choose_chain
from transferlab.similarity import block_features, mmd_test
from transferlab.similarity.chain import chain_distances
from transferlab.training import TrainSettings, accuracy, train_classifier
from transferlab.transitive import SelfTrainingConfig, self_train

SCENARIOS = ("rotate", "colour", "digits")
# A control for the rule: the intermediate (the third of mnist5k inverted) lies off the path between
# the unrotated source and the rotated target, so the rule should adapt directly.
CONTROL = "rotate-offpath"
HOP_METHODS = ("self-training", "dann")
N_FEATURES = 500


def _thirds(seed: int = 0) -> list[Domain]:
    mnist = load_domain(DomainSpec(name="mnist5k"), seed=0)
    order = np.random.default_rng(seed).permutation(len(mnist))
    return [mnist.subset(part) for part in np.array_split(order, 3)]


def _unlabelled(domain: Domain, name: str) -> Domain:
    return Domain(name, np.asarray(domain.x), np.full(len(domain), -1, dtype=np.int64), domain.classes)


def _random(domain: Domain, n: int, seed: int) -> Domain:
    return domain.subset(np.sort(np.random.default_rng(seed).permutation(len(domain))[:n]))


def scenario(name: str, data: Path) -> tuple[Domain, Domain, Domain]:
    """(source, intermediate, target), harmonised to 28 px."""
    if name == CONTROL:
        thirds = _thirds()
        parts = [apply_shift(thirds[0], ShiftSpec(name="rotate", severity=0.0, seed=0)),
                 apply_shift(thirds[1], ShiftSpec(name="invert", severity=1.0, seed=1)),
                 apply_shift(thirds[2], ShiftSpec(name="rotate", severity=0.8, seed=2))]
        return tuple(harmonise(d, 28, 1) for d in parts)
    if name in ("rotate", "colour"):
        shift, levels, channels = ("rotate", (0.0, 0.4, 0.8), 1) if name == "rotate" else \
            ("colour-background", (0.0, 0.3, 0.6), 3)
        parts = [apply_shift(d, ShiftSpec(name=shift, severity=s, seed=i)) for i, (d, s) in
                 enumerate(zip(_thirds(), levels))]
        return tuple(harmonise(d, 28, channels) for d in parts)
    source = load_domain(DomainSpec(name="mnist5k"), seed=0)
    usps = _random(load_domain(DomainSpec(name="usps", path=str(data / "usps")), seed=0), 2000, 0)
    target = load_domain(DomainSpec(name="uci-digits"), seed=0)
    return tuple(harmonise(d, 28, 1) for d in (source, usps, target))


def _split(domain: Domain, fraction: float, seed: int) -> tuple[Domain, Domain]:
    order = np.random.default_rng(seed).permutation(len(domain))
    cut = round(len(domain) * fraction)
    return domain.subset(np.sort(order[cut:])), domain.subset(np.sort(order[:cut]))


def _features(model, domain: Domain, seed: int) -> np.ndarray:
    sub = _random(domain, N_FEATURES, seed)
    feats = block_features(model, np.asarray(sub.x))
    return feats[list(feats)[-2]]


def _hop(method: str, model, pool: Domain, src_train: Domain, src_val: Domain, settings: TrainSettings):
    if method == "self-training":
        return self_train(model, pool, SelfTrainingConfig(), settings).model
    data = AdaptationData(source_train=src_train, source_val=src_val, target_unlabelled=pool)
    return get_method(method)().fit(model, data, None, settings).model


def run_seed(name: str, domains, seed: int, quick: bool) -> dict:
    source, inter, target = domains
    src_train, src_val = _split(source, 0.15, 0)
    pool, test = _split(target, 0.3, 0)
    pool, inter_pool = _unlabelled(pool, "target"), _unlabelled(inter, "intermediate")
    steps = 10 if quick else 30
    pre = TrainSettings(epochs=2 if quick else 5, max_steps_per_epoch=steps * 2, seed=seed)
    hop = TrainSettings(epochs=2 if quick else 3, max_steps_per_epoch=steps, seed=seed)
    spec = ModelSpec(arch="lenet", in_channels=source.x.shape[1], image_size=28, num_classes=10,
                     classes=list(source.classes))
    model = train_classifier(build_model(spec, seed=seed), src_train, src_val, pre).model
    feats = {"source": _features(model, src_train, seed), "intermediate": _features(model, inter_pool, seed),
             "target": _features(model, pool, seed)}
    dist = chain_distances(feats, seed=seed, a_distance=False)
    p = mmd_test(feats["source"], feats["target"], n_permutations=100, seed=seed).p_value
    decision = choose_chain(dist["mmd"], ["intermediate"], p_value=p, alpha=0.05, config=TransitiveConfig())
    row = {"source_only": accuracy(model, test), "use": decision.use, "reason": decision.reason,
           "d": {k: dist["mmd"][a][b] for k, (a, b) in {"S-I": ("source", "intermediate"),
                                                         "I-T": ("intermediate", "target"),
                                                         "S-T": ("source", "target")}.items()}}
    for method in HOP_METHODS:
        direct = _hop(method, model, pool, src_train, src_val, hop)
        first = _hop(method, model, inter_pool, src_train, src_val, hop)
        chained = _hop(method, first, pool, src_train, src_val, hop)
        row[method] = {"direct": accuracy(direct, test), "transitive": accuracy(chained, test)}
    return row


def _mean_std(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * sd:.1f}"


def report(rows: dict, seeds: list[int], command: str, seconds: float) -> str:
    lines = [f"Machine: {results.machine()}; shared with other jobs at the time (2 cores, 5 other sessions).",
             (f"Command: `{command}` ({seconds / 60:.1f} min). Training seeds {seeds}; data seed 0. LeNet; pretrain "
              "5 epochs × ≤ 60 steps; each hop 3 epochs × ≤ 30 steps (batch 64, Adam 1e-3). Accuracy (%) on the "
              "target test split (30 %), mean ± std over seeds."), "",
             ("| scenario | d(S,I) | d(I,T) | d(S,T) | source-only | self-training direct | self-training transitive "
              "| dann direct | dann transitive | rule: transitive in | oracle (self-training / dann) |"),
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    agree = {m: 0 for m in HOP_METHODS}
    for name, per_seed in rows.items():
        d = {k: statistics.mean(r["d"][k] for r in per_seed) for k in ("S-I", "I-T", "S-T")}
        cells = [_mean_std([r[m][kind] for r in per_seed]) for m in HOP_METHODS for kind in ("direct", "transitive")]
        uses = sum(r["use"] for r in per_seed)
        oracle = []
        for m in HOP_METHODS:
            wins = sum(r[m]["transitive"] > r[m]["direct"] for r in per_seed)
            agree[m] += sum((r[m]["transitive"] > r[m]["direct"]) == r["use"] for r in per_seed)
            oracle.append(f"{wins}/{len(per_seed)}")
        lines.append(f"| {name} | {d['S-I']:.3f} | {d['I-T']:.3f} | {d['S-T']:.3f} | "
                     f"{_mean_std([r['source_only'] for r in per_seed])} | {' | '.join(cells)} | "
                     f"{uses}/{len(per_seed)} seeds | transitive better in {' / '.join(oracle)} |")
    total = sum(len(v) for v in rows.values())
    lines += ["", ("d: MMD (√MMD², one kernel for the chain) in the source model's penultimate features, mean over "
                   "seeds. Rule = `select.transitive` defaults (max_hop_ratio 0.75, α 0.05). Rule agrees with the "
                   f"oracle (transitive chosen iff it scored higher) in {agree['self-training']}/{total} (seed, "
                   f"scenario) cases for self-training hops and {agree['dann']}/{total} for dann hops."), "",
              "Reasons the rule gave (seed " + str(seeds[0]) + "):"]
    lines += [f"- {name}: {per_seed[0]['reason']}" for name, per_seed in rows.items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=[*SCENARIOS, CONTROL])
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--quick", action="store_true", help="smoke test: 2 epochs, few steps")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="also write the markdown into this RESULTS.md")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rows: dict[str, list[dict]] = {}
    for name in args.scenarios:
        domains = scenario(name, args.data)
        for seed in args.seeds:
            row = run_seed(name, domains, seed, args.quick)
            rows.setdefault(name, []).append(row)
            print(name, seed, {k: v for k, v in row.items() if k != "reason"}, flush=True)
    command = "python benchmarks/transitive.py " + " ".join(argv if argv is not None else sys.argv[1:])
    markdown = report(rows, args.seeds, command, time.perf_counter() - start)
    print(markdown)
    if args.out:
        suffix = "" if args.scenarios == list(SCENARIOS) else "-" + "-".join(args.scenarios)
        title = "## Transitive transfer" + (f" ({', '.join(args.scenarios)})" if suffix else "")
        results.write_section(args.out, "transitive" + suffix + ("-quick" if args.quick else ""),
                              title + "\n\n" + markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
