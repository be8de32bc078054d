"""Zero-shot transfer through the digits' attribute table: train on digits 0-6, recognise 7-9 without
a single label of them (DAP and ESZSL), against chance and against the table's own ceiling.

    .venv/bin/python benchmarks/zero_shot.py --protocol pseudo-unseen --variants 0 1 3 1:weak --pairs 0
    .venv/bin/python benchmarks/zero_shot.py --protocol unseen --variants 1:weak [--seeds 0 1 2] [--threads 1]

A *variant* is how the source LeNet is trained, ``BETA[:AUGMENT]``: β the weight of the attribute
BCE beside the cross-entropy (attribute-supervised source training, what the pretrain stage does
with ``pretrain.attribute_weight``; 0: cross-entropy alone) and the augmentation strength
(``pretrain.augment``). The pipeline's pretrain defaults otherwise (early stopping on a source
validation split).

``--protocol pseudo-unseen`` chooses the variant without reading 7, 8 or 9: per seed, 2 of the seen
digits 0-6 are held out (seeded), the source model is trained on the other 5 (and their attribute
rows only), and the zero-shot methods are scored on the 2 (ZSL, chance 50 %) and GZSL over the 7.

``--protocol unseen`` reports on 7-9: the source model is trained on 0-6, then ``dap`` and
``eszsl`` are fitted from it exactly as the adapt stage fits them (ESZSL's γ, λ chosen on
pseudo-unseen *seen* classes), over the target's ten classes; ``dap-head`` is DAP read straight off
the trained attribute head. Scores on the target test set (per-class mean accuracy,
:mod:`transferlab.evaluation.zero_shot`):

- ZSL: test samples of 7-9, argmax over 7-9 only (chance 33.3 %);
- GZSL: test samples of 0-9, argmax over all ten; S (seen 0-6), U (unseen 7-9), H = 2SU/(S+U).

**Ceiling**: the same attribute classifier (same frozen source features, same method and
hyperparameter choice) whose attribute predictors / V are fitted on source samples of *all ten*
digits, i.e. with the unseen classes' labels: what is left is the loss of predicting through the
table's bottleneck (and the domain shift), not the loss of never having seen 7-9.

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

from benchmarks.results import machine
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


def parse_variant(text: str) -> tuple[float, str]:
    """'BETA' or 'BETA:AUGMENT' (e.g. '0', '1', '1:weak'): the attribute-loss weight of source training
    (0: plain cross-entropy, the colleague's baseline) and its augmentation strength."""
    beta, _, augment = text.partition(":")
    return float(beta), augment or "none"


def train_source(source: Domain, classes: list[str], table, seed: int, variant: str):
    """A LeNet trained on ``source`` (its classes ``classes``), attribute-supervised when β > 0: the
    attribute targets are the binarised rows of ``classes`` only (what the pretrain stage does)."""
    beta, augment = parse_variant(variant)
    train, val = split_source(source, 0.1, seed)
    rows = binarise(table.signatures(classes)) if beta > 0 else None
    spec = ModelSpec(arch="lenet", image_size=28, num_classes=len(classes), classes=classes,
                     attribute_head=None if rows is None else rows.shape[1])
    settings = PRETRAIN.model_copy(update={"seed": seed, "attribute_weight": beta, "augment": augment})
    model = train_classifier(build_model(spec, seed=seed), train, val, settings, class_attributes=rows).model
    return model, train, val


def dap_head_scores(model, seen: list[str], classes: list[str], table, x: np.ndarray) -> np.ndarray | None:
    """DAP straight on the trained attribute head (no refit): its logits as the attribute posteriors."""
    head = getattr(model, "attribute_head", None)
    if head is None:
        return None
    with torch.no_grad():
        z = head(torch.from_numpy(features_of(model, x)).float()).double().numpy()
    s_seen = binarise(table.signatures(seen))
    mask = (np.ptp(s_seen, axis=0) > 0).astype(float)
    logp1 = torch.nn.functional.logsigmoid(torch.from_numpy(z)).numpy()
    logp0 = torch.nn.functional.logsigmoid(torch.from_numpy(-z)).numpy()
    return dap_log_scores(logp1, logp0, binarise(table.signatures(classes)), s_seen.mean(0), mask)


def zero_shot_methods(model, train, val, classes: list[str], seen: list[str], table, test: Domain, seed: int) -> dict:
    """Scores of dap, eszsl (fitted as the adapt stage fits them) and dap-head over ``classes``."""
    pool = Domain("pool", test.x[:10], np.zeros(min(10, len(test)), dtype=np.int64), tuple(classes))
    data = AdaptationData(train, val, None, pool, class_attributes=table)
    out = {}
    for method in ("dap", "eszsl"):
        fitted = get_method(method)().fit(model, data, {}, PRETRAIN.model_copy(update={"seed": seed}))
        out[method] = zero_shot_scores(predict_logits(fitted.model, test.x), test.y, classes, seen)
        out[method]["how"] = fitted.checkpoint_criterion
    scores = dap_head_scores(model, seen, classes, table, test.x)
    if scores is not None:
        out["dap-head"] = zero_shot_scores(scores, test.y, classes, seen)
    return out


def pseudo_unseen_one(name: str, source_spec, seed: int, table, variant: str) -> dict:
    """The selection protocol, on seen classes only: 2 of 0-6 (seeded) are held out as pseudo-unseen,
    the source model is trained on the other 5, and the zero-shot methods are scored on a test made
    of 20 % of the 5 (never trained on) and every source sample of the 2. No 7, 8, 9 is read."""
    started = time.perf_counter()
    source = _classes(_load(source_spec), SEEN)
    held = sorted(np.random.default_rng(seed).choice(len(SEEN), 2, replace=False).tolist())
    five = [c for i, c in enumerate(SEEN) if i not in held]
    trainval, test5 = split_source(_classes(source, five), 0.2, seed)
    model, train, val = train_source(trainval, five, table, seed, variant)
    two = _classes(source, [SEEN[i] for i in held])
    index = {c: i for i, c in enumerate(SEEN)}
    y = np.concatenate([[index[test5.classes[k]] for k in test5.y], [index[two.classes[k]] for k in two.y]])
    test = Domain("pseudo-test", np.concatenate([test5.x, two.x]), y.astype(np.int64), tuple(SEEN))
    out = zero_shot_methods(model, train, val, SEEN, five, table, test, seed)
    print(f"{name} {variant} seed={seed} held {held}: " + ", ".join(
        f"{m} U {100 * r['unseen']:.1f} H {100 * r.get('harmonic_mean', 0):.1f}" for m, r in out.items())
        + f" ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return out


def run_one(name: str, source_spec, target_spec, test_spec, seed: int, table, variant: str) -> dict:
    started = time.perf_counter()
    full_source = _load(source_spec)
    model, train, val = train_source(_classes(full_source, SEEN), SEEN, table, seed, variant)
    target = _load(target_spec)
    test = _load(test_spec) if test_spec is not None else split_target(target, 0, 0.3, seed).test
    # Zero-shot methods read no target sample; the pool only completes AdaptationData (no labels).
    out = zero_shot_methods(model, train, val, list(test.classes), SEEN, table, test, seed)
    seen_rows = full_source.subset(np.flatnonzero(np.isin(full_source.y, range(10))))
    for method, scores in ceiling_scores(model, seen_rows, table, test.x, seed).items():
        out[f"{method} ceiling"] = zero_shot_scores(scores, test.y, test.classes, SEEN)
    print(f"{name} {variant} seed={seed}: " + ", ".join(
        f"{m} U {100 * r['unseen']:.1f} H {100 * r.get('harmonic_mean', 0):.1f}" for m, r in out.items())
        + f" ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return out


def _cell(values: list[float]) -> str:
    mean = 100 * statistics.mean(values)
    return f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else f"{mean:.1f}"


def _variant_words(variant: str) -> str:
    beta, augment = parse_variant(variant)
    return f"β={beta:g}" + (f", augment {augment}" if augment != "none" else "")


def table_markdown(results: dict, args, minutes: float) -> str:
    pseudo = args.protocol == "pseudo-unseen"
    chance_zsl = "50.0" if pseudo else "33.3"
    what = ("pseudo-unseen: 2 of the seen digits 0-6 held out per seed (seeded), source model trained on the "
            "other 5; ZSL among the 2 (chance 50), GZSL among the 7 on a held-out 20 % of the 5 and all of the 2"
            if pseudo else "ZSL: 7-9 among 7-9 (chance 33.3). GZSL: among all ten, S on 0-6, U on 7-9 (chance 10)")
    ceiling = "" if pseudo else " ceiling ZSL | ceiling H |"
    lines = [f"Command: `.venv/bin/python benchmarks/zero_shot.py --protocol {args.protocol} --variants "
             f"{' '.join(args.variants)} --seeds {' '.join(map(str, args.seeds))} --threads {args.threads}"
             + (f" --pairs {' '.join(map(str, args.pairs))}" if args.pairs else "") + f"`; {minutes:.1f} min on "
             f"{machine()} (AMD EPYC, 2 cores shared with other jobs at the time); CPU; seeds "
             + ", ".join(map(str, args.seeds)) + "; table `builtin:digits`.", "",
             (f"Per-class mean accuracy (%), mean ± std over seeds. {what}. β: weight of the attribute BCE in "
              "source training (0: cross-entropy alone)."), "",
             "| pair | source training | method | ZSL unseen | GZSL S | GZSL U | GZSL H |" + ceiling,
             "|---|---|---|---|---|---|---|" + ("" if pseudo else "---|---|")]
    for (pair, variant), runs in results.items():
        for method in ("dap", "eszsl", "dap-head"):
            if method not in runs[0]:
                continue
            def col(key, who=method, runs=runs):
                return _cell([r[who][key] for r in runs])
            row = (f"| {pair} | {_variant_words(variant)} | {method} | {col('unseen')} | {col('gzsl_seen')} | "
                   f"{col('gzsl_unseen')} | {col('harmonic_mean')} |")
            if not pseudo and f"{method} ceiling" in runs[0]:
                row += f" {col('unseen', method + ' ceiling')} | {col('harmonic_mean', method + ' ceiling')} |"
            elif not pseudo:
                row += " | |"
            lines.append(row)
    lines.append(f"| | | chance | {chance_zsl} | | | |" + ("" if pseudo else " 33.3 | 10.0 |"))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--pairs", type=int, nargs="+", default=None, help="indices of the pairs to run")
    parser.add_argument("--protocol", choices=("pseudo-unseen", "unseen"), default="unseen",
                        help="pseudo-unseen: choose on held-out seen classes; unseen: report on 7-9")
    parser.add_argument("--variants", nargs="+", default=["1"],
                        help="source trainings, 'BETA[:AUGMENT]': attribute-loss weight and augmentation")
    parser.add_argument("--out", type=Path, default=None, help="print only; the markdown goes to this file")
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
        for variant in args.variants:
            if args.protocol == "pseudo-unseen":
                results[(name, variant)] = [pseudo_unseen_one(name, source, s, table, variant) for s in args.seeds]
            else:
                results[(name, variant)] = [run_one(name, source, target, test, s, table, variant)
                                            for s in args.seeds]
    markdown = table_markdown(results, args, (time.perf_counter() - started) / 60)
    print(markdown)
    if args.out:
        args.out.write_text(markdown + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
