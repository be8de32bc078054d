"""Validator study: how well each label-free validator ranks fully trained candidates, per suite.

For one scenario (a pair of :mod:`benchmarks.selection_suites` and a seed) with no target labels:
pretrain on the source, train every method that can run on the data once in full, add the
EnsV candidate (:class:`transferlab.ensemble.EnsembleClassifier` over all of them), score every
candidate with every validator of :data:`transferlab.validators.VALIDATORS` (and mean-rank of IM,
SND, DEV), and measure on the target test split (this audit only):

- the **regret** of each validator's top pick: best candidate's test accuracy − the pick's;
- the **rank correlation** (Spearman ρ and Kendall τ, scipy) between the validator's scores and
  the candidates' test accuracies;
- the **committee** rule (:func:`transferlab.ensemble.committee_choice` over :data:`COMMITTEE`):
  its pick, or the ensemble of the distinct picks when they disagree, and its regret.
"""

from __future__ import annotations

import math
import statistics
import time

import numpy as np
from scipy.stats import kendalltau, spearmanr

from benchmarks.selection_suites import Pair, load
from transferlab.data import split_source, split_target
from transferlab.ensemble import (
    COMMITTEE,
    EnsembleClassifier,
    committee_choice,
    committee_top_picks,
)
from transferlab.methods import AdaptationData, applicable_methods, get_method
from transferlab.models import build_model
from transferlab.selection import mean_rank_scores
from transferlab.training import TrainSettings, accuracy, train_classifier
from transferlab.validators import VALIDATORS, label_free_scores

STUDIED = (*VALIDATORS, "mean-rank")
ENSEMBLE = "ensemble (all)"


def _correlations(scores: list[float], accs: list[float]) -> tuple[float, float]:
    if len(set(scores)) < 2 or len(set(accs)) < 2:
        return math.nan, math.nan  # a constant ranking correlates with nothing
    return float(spearmanr(scores, accs).statistic), float(kendalltau(scores, accs).statistic)


def study_scenario(name: str, pair: Pair, seed: int, n_source: int | None, n_target: int | None,
                   pretrain: TrainSettings, adapt: TrainSettings, max_samples: int = 1000) -> dict:
    """One pair and seed without target labels (see module docstring); accuracies are fractions."""
    started = time.perf_counter()
    source, target = load(pair, n_source, n_target)
    pretrain, adapt = (s.model_copy(update={"seed": seed}) for s in (pretrain, adapt))
    train, val = split_source(source, 0.1, seed)
    splits = split_target(target, 0, 0.3, seed)
    data = AdaptationData(train, val, None, splits.unlabelled)
    model = train_classifier(build_model(pair.model_spec(), seed=seed), train, val, pretrain).model
    models, fit_s = {}, {}
    for method in applicable_methods(data, model):
        t0 = time.perf_counter()
        models[method] = get_method(method)().fit(model, data, None, adapt).model.eval()
        fit_s[method] = time.perf_counter() - t0
    models[ENSEMBLE] = EnsembleClassifier(list(models.values())).eval()
    acc, scores, score_s = {}, {}, 0.0
    for method, m in models.items():
        acc[method] = accuracy(m, splits.test)
        t0 = time.perf_counter()
        scores[method] = label_free_scores(m, train.x, val.x, val.y, splits.unlabelled.x, seed=seed,
                                            max_samples=max_samples)
        score_s += time.perf_counter() - t0
    names = list(models)
    for method, s in zip(names, mean_rank_scores([scores[m] for m in names])):
        scores[method]["mean-rank"] = s
    best = max(acc.values())
    per_validator = {}
    for v in STUDIED:
        vals = [scores[m][v] for m in names]
        pick = names[int(np.argmax(vals))]
        rho, tau = _correlations(vals, [acc[m] for m in names])
        per_validator[v] = {"pick": pick, "regret": best - acc[pick], "spearman": rho, "kendall": tau}
    choice = committee_choice(committee_top_picks({m: scores[m] for m in names if m != ENSEMBLE}))
    committee_acc = (accuracy(EnsembleClassifier([models[m] for m in choice.finalists]).eval(), splits.test)
                     if choice.ensemble else acc[choice.finalists[0]])
    return {
        "pair": name, "seed": seed, "form": pair.form, "candidates": names, "accuracy": acc,
        "best": max(acc, key=acc.get), "best_acc": best, "source_only_acc": acc.get("source-only", math.nan),
        "validators": per_validator, "committee": {
            "ensemble": choice.ensemble, "finalists": list(choice.finalists), "reason": choice.reason,
            "acc": committee_acc, "regret": best - committee_acc},
        "fit_s": sum(fit_s.values()), "score_s": score_s, "seconds": time.perf_counter() - started,
    }


def summarise(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per validator (and the committee): mean and worst regret (points), worst loss to source-only
    (points, positive = below it), mean Spearman and Kendall (NaN-skipping), and how often it picked
    an ensemble."""
    out = {}
    for v in STUDIED:
        regrets = [100 * r["validators"][v]["regret"] for r in rows]
        rhos = [r["validators"][v]["spearman"] for r in rows if not math.isnan(r["validators"][v]["spearman"])]
        taus = [r["validators"][v]["kendall"] for r in rows if not math.isnan(r["validators"][v]["kendall"])]
        below = [100 * (r["source_only_acc"] - r["best_acc"] + r["validators"][v]["regret"]) for r in rows]
        out[v] = {"regret": statistics.mean(regrets), "worst": max(regrets), "below_source": max(below),
                  "spearman": statistics.mean(rhos) if rhos else math.nan,
                  "kendall": statistics.mean(taus) if taus else math.nan,
                  "ensemble_picks": sum(r["validators"][v]["pick"] == ENSEMBLE for r in rows)}
    regrets = [100 * r["committee"]["regret"] for r in rows]
    below = [100 * (r["source_only_acc"] - r["committee"]["acc"]) for r in rows]
    out["committee"] = {"regret": statistics.mean(regrets), "worst": max(regrets), "below_source": max(below),
                        "spearman": math.nan,
                        "kendall": math.nan, "ensemble_picks": sum(r["committee"]["ensemble"] for r in rows)}
    ens = [100 * (r["best_acc"] - r["accuracy"][ENSEMBLE]) for r in rows]
    below = [100 * (r["source_only_acc"] - r["accuracy"][ENSEMBLE]) for r in rows]
    out["always ensemble"] = {"regret": statistics.mean(ens), "worst": max(ens), "below_source": max(below),
                              "spearman": math.nan,
                              "kendall": math.nan, "ensemble_picks": len(rows)}
    return out


def study_markdown(rows: list[dict], suite: str, provenance: str) -> str:
    """The study's RESULTS.md section: a summary per validator, then one row per scenario."""
    summary = summarise(rows)
    n_cand = sorted({len(r["candidates"]) for r in rows})
    lines = [
        f"## Validator study, {suite} suite (`benchmarks/selection.py --study`, {len(rows)} scenarios, no target labels)",
        "",
        provenance + " Forms: grey = 28×28 × 1 channel (LeNet); rgb = 28×28 × 3 channels (LeNet); vectors = "
        "both domains at 8×8 grey flattened to 64 features (an MLP, 128 hidden units)."
        f" Candidates: every method that can run on the pair without target labels, each trained "
        f"once in full (training seed = the scenario's seed; no repeats), plus '{ENSEMBLE}', the EnsV candidate "
        f"averaging all their predicted probabilities ({', '.join(map(str, n_cand))} candidates per scenario). "
        "Each validator scores every candidate on the unlabelled target pool; its top pick's regret = best "
        "candidate's test accuracy − the pick's (points), and Spearman ρ / Kendall τ (scipy) rank-correlate its "
        "scores with the candidates' test accuracies, averaged over scenarios (a constant score is skipped). "
        f"Committee = the disagreement rule over {', '.join(v.upper() for v in COMMITTEE)} (fixed before any "
        "held-out number was seen): their common pick when they agree, else the ensemble of their distinct picks. "
        "'always ensemble' = picking the all-candidate ensemble every time. Accuracies on the target test split, "
        "which only this audit reads.",
        "",
        ("| validator | mean regret (points) | worst regret | worst loss to source-only | mean Spearman ρ "
         "| mean Kendall τ | picks an ensemble |"),
        "|---|---|---|---|---|---|---|",
    ]

    def cell(x: float) -> str:
        return "-" if math.isnan(x) else f"{x:.2f}"

    for v, d in summary.items():
        lines.append(f"| {v} | {d['regret']:.2f} | {d['worst']:.1f} | {d['below_source']:+.1f} | {cell(d['spearman'])} | {cell(d['kendall'])} "
                     f"| {d['ensemble_picks']}/{len(rows)} |")
    lines += ["", "| pair | seed | form | best (oracle) | acc | source-only | ensemble (all) | "
              + " | ".join(STUDIED) + " | committee |", "|---" * (8 + len(STUDIED)) + "|"]
    for r in rows:
        c = r["committee"]
        lines.append(
            f"| {r['pair']} | {r['seed']} | {r['form']} | {r['best']} | {100 * r['best_acc']:.1f} "
            f"| {100 * r['source_only_acc']:.1f} | {100 * r['accuracy'][ENSEMBLE]:.1f} | "
            + " | ".join(f"{100 * r['validators'][v]['regret']:.1f}" for v in STUDIED)
            + f" | {100 * c['regret']:.1f}" + (" (ens. of " + ", ".join(c["finalists"]) + ")" if c["ensemble"] else "")
            + " |")
    fit, score = sum(r["fit_s"] for r in rows), sum(r["score_s"] for r in rows)
    cost = (f"Regrets in points. Training every candidate took {fit:.0f} s in all, scoring every candidate with "
            f"every validator {score:.0f} s ({100 * score / fit:.0f} % of the training), wall time "
            f"{sum(r['seconds'] for r in rows) / 60:.1f} min.")
    lines += ["", cost, ""]
    return "\n".join(lines)
