r"""Several candidate sources for one target: measure each against the target, rank them, with reasons.

Each candidate comes with its own source model (trained on it, or given). Two rules:

* **Target labels available** (≥ 2 classes labelled): rank by **LogME** (You et al., 2021) of each
  source model's penultimate features on the labelled target samples, higher first. LogME is a
  per-sample log evidence of a Bayesian linear model *on the target's own labels*: the same
  quantity for every candidate whatever its feature width or scale, made to rank models against
  each other. SFDA (:mod:`transferlab.similarity.sfda`), H-score, LEEP and NCE are reported beside it.
* **No target labels**: rank by an estimate of the domain-adaptation bound of Ben-David et al.
  (2010), :math:`\epsilon_T(h) \le \epsilon_S(h) + \tfrac12 d_{\mathcal{H}\Delta\mathcal{H}}(S, T) + \lambda`::

      bound = (1 − source validation accuracy) + ½ · A-distance(p_S, p_T)

  lower first, where p_S, p_T are the source model's class probabilities on source and target
  samples and the A-distance is the proxy of Ben-David et al. (2007), 2 (1 − 2 ε_domain), ε_domain
  the held-out error of a linear domain classifier. Ties (to 3 decimals) go to the lower
  normalised MMD² in the same space.
* **No target labels, and a candidate without data** (a trained model among ``data.sources``):
  the bound needs source samples, so every candidate is ranked by the **information maximisation**
  of its model's predictions on the unlabelled target, H(mean p) − mean H(p), higher first (the
  quantity SHOT maximises, Liang et al. 2020): confident predictions that spread over the classes.
  A model that has learnt nothing (shuffled labels) predicts near-uniformly and sinks; one trained
  on the target's own distribution is confident and diverse and rises. It is a property of the
  model's outputs alone, in the class simplex every candidate shares, so it compares a model without
  data with a dataset's model like for like.

Why these spaces. Distances between *different* sources must be comparable. The penultimate
features of two candidate models are different coordinate systems (different widths, scales,
learnt directions): an MMD² of 0.02 under one model and 0.05 under another say nothing about which
source is closer. The class-probability simplex over the shared classes is one space for all
candidates, with the same meaning in each (what the classifier believes), and it is the output of
the very hypothesis whose target error the bound is about; the A-distance there is a held-out
error rate, dimensionless, and the source error is an error rate too, so the two add up. A shuffled-
label source has a high source error and sinks; a source identical to the target has an A-distance
near 0 and rises. The own-space MMD test (MMD², p-value) and A-distance on penultimate features are
measured too and shown in the reasons, as evidence of a shift per source, not as the ranking key.
"""

from __future__ import annotations

import numpy as np
import torch

from transferlab.data import Domain, stratified_subsample
from transferlab.similarity.distances import proxy_a_distance
from transferlab.similarity.mmd import mmd_test
from transferlab.similarity.report import (
    SimilarityConfig,
    block_features,
    scorable,
    transferability_headline,
)
from transferlab.similarity.sfda import sfda
from transferlab.validators import information_maximization

LABELLED_RULE = "logme"
LABEL_FREE_RULE = "error-bound"
SOURCE_FREE_RULE = "information-maximisation"
RULES = {
    SOURCE_FREE_RULE: "information maximisation of each candidate model's predictions on the unlabelled target, "
                      "H(mean p) − mean H(p), highest first (some candidates are models without data, so no "
                      "source-target distance can be measured for them)",
    LABELLED_RULE: "LogME of each source model's features on the labelled target samples, highest first "
                   "(per-sample evidence on the target's own labels: comparable across models)",
    LABEL_FREE_RULE: "estimated target error bound = source validation error + ½ A-distance between source and "
                     "target in the source model's class-probability space (one space for every candidate), "
                     "lowest first (Ben-David et al. 2010)",
}


def _probabilities(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(np.asarray(logits, dtype=np.float64)), dim=1).numpy()


def measure_source(model, source: Domain, target: Domain, labelled: Domain | None, *,
                   source_val_accuracy: float, config: SimilarityConfig) -> dict:
    """Everything the ranking reads about one candidate: ``source`` its training data, ``model`` the
    model trained on it, ``target`` the unlabelled target pool (never the test split), ``labelled``
    the labelled target samples or None. The output space must be the target's classes."""
    src = stratified_subsample(source, config.max_samples, config.seed)
    tgt = stratified_subsample(target, config.max_samples, config.seed)
    fs, ft = block_features(model, src.x), block_features(model, tgt.x)
    feature = list(fs)[-2]
    head = mmd_test(fs[feature], ft[feature], n_permutations=config.permutations, seed=config.seed,
                    dtype=config.dtype, estimator=config.estimator)
    ps, pt = _probabilities(fs["logits"]), _probabilities(ft["logits"])
    out_mmd = mmd_test(ps, pt, n_permutations=config.permutations, seed=config.seed, dtype=config.dtype,
                       estimator=config.estimator)
    a_out = proxy_a_distance(ps, pt, seed=config.seed)
    return {
        "source_val_accuracy": float(source_val_accuracy),
        "mmd": {"mmd2": head.mmd2, "p_value": head.p_value, "normalised": head.normalised,
                "significant": head.p_value < config.alpha, "features": feature},
        "a_distance": proxy_a_distance(fs[feature], ft[feature], seed=config.seed),
        "output_a_distance": a_out,
        "output_mmd_normalised": out_mmd.normalised,
        "error_bound": (1.0 - float(source_val_accuracy)) + 0.5 * a_out,
        "information_maximisation": information_maximization(ft["logits"]),
        "transferability": transferability_scores(model, labelled),
        "n_source": len(src), "n_target": len(tgt), "source_data": True,
    }


def measure_model(model, target: Domain, labelled: Domain | None, *, config: SimilarityConfig) -> dict:
    """What the ranking reads about a candidate that is a model without data: its predictions on the
    unlabelled ``target`` pool, and the transferability scores when ``labelled`` is given."""
    tgt = stratified_subsample(target, config.max_samples, config.seed)
    ft = block_features(model, tgt.x)
    return {"source_data": False, "information_maximisation": information_maximization(ft["logits"]),
            "transferability": transferability_scores(model, labelled), "n_target": len(tgt)}


def transferability_scores(model, labelled: Domain | None) -> dict | None:
    """LogME, SFDA, H-score, LEEP, NCE of ``model`` on the labelled target samples (None without)."""
    if not scorable(labelled):
        return None
    fl = block_features(model, labelled.x)
    f = fl[list(fl)[-2]]
    return {**transferability_headline(f, _probabilities(fl["logits"]), labelled.y), "sfda": sfda(f, labelled.y),
            "n_labelled": len(labelled)}


def _rule(measurements: list[dict]) -> str:
    if all(m.get("transferability") for m in measurements):
        return LABELLED_RULE
    return LABEL_FREE_RULE if all(m.get("source_data", True) for m in measurements) else SOURCE_FREE_RULE


def _key(m: dict, rule: str) -> tuple:
    if rule == LABELLED_RULE:
        return (-m["transferability"]["logme"],)
    if rule == SOURCE_FREE_RULE:
        return (-round(m["information_maximisation"], 4),)
    return (round(m["error_bound"], 3), m["output_mmd_normalised"])


def _score(m: dict, rule: str) -> float:
    return {LABELLED_RULE: lambda: m["transferability"]["logme"], LABEL_FREE_RULE: lambda: m["error_bound"],
            SOURCE_FREE_RULE: lambda: m["information_maximisation"]}[rule]()


def _reason(m: dict, rank: int, total: int, rule: str) -> str:
    if not m.get("source_data", True):
        lead = f"a model without data; information maximisation {m['information_maximisation']:.3f} on the target"
        if rule == LABELLED_RULE:
            t = m["transferability"]
            lead = (f"a model without data; LogME {t['logme']:.3f} on {t['n_labelled']} labelled target samples "
                    f"(SFDA {t['sfda']:.3f}, H-score {t['hscore']:.3g}, LEEP {t['leep']:.3f})")
        return f"{m['name']}: rank {rank} of {total}: {lead}."
    if rule == SOURCE_FREE_RULE:
        return (f"{m['name']}: rank {rank} of {total}: information maximisation {m['information_maximisation']:.3f} "
                f"on the target; estimated target error bound {m['error_bound']:.3f}.")
    mmd = m["mmd"]
    shift = (f"own-feature MMD² {mmd['mmd2']:.4g} (normalised {mmd['normalised']:.3f}, p = {mmd['p_value']:.3g}: "
             f"{'a significant' if mmd['significant'] else 'no significant'} shift), A-distance {m['a_distance']:.2f}")
    bound = (f"estimated target error bound {m['error_bound']:.3f} = source validation error "
             f"{1 - m['source_val_accuracy']:.3f} + ½ × class-probability A-distance {m['output_a_distance']:.2f}")
    if rule == LABELLED_RULE:
        t = m["transferability"]
        lead = (f"LogME {t['logme']:.3f} on {t['n_labelled']} labelled target samples (SFDA {t['sfda']:.3f}, "
                f"H-score {t['hscore']:.3g}, LEEP {t['leep']:.3f})")
        return f"{m['name']}: rank {rank} of {total}: {lead}; {bound}; {shift}."
    return f"{m['name']}: rank {rank} of {total}: {bound}; {shift}."


def rank_sources(measurements: list[dict]) -> dict:
    """Order candidates (each a :func:`measure_source` dict with a ``name``), best first.

    Returns the rule used and why, the ranking (name, rank, score, reason sentence, measurements)
    and the chosen (first) candidate's name."""
    if not measurements:
        raise ValueError("no candidate source to rank")
    rule = _rule(measurements)
    order = sorted(range(len(measurements)), key=lambda i: (_key(measurements[i], rule), i))
    ranking = []
    for rank, i in enumerate(order, start=1):
        m = measurements[i]
        ranking.append({"rank": rank, "index": i, "name": m["name"], "score": _score(m, rule),
                        "reason": _reason(m, rank, len(order), rule), "measurements": m})
    return {"rule": rule, "rule_text": RULES[rule], "higher_is_better": rule != LABEL_FREE_RULE,
            "ranking": ranking, "chosen": ranking[0]["name"], "chosen_index": ranking[0]["index"]}
