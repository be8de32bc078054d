"""Rule mode: a documented policy from (domain shift, target labels) to a transfer method.

Inputs, all from the similarity report (see COMMON.md) and the label budget:

- *significant shift*: the MMD permutation test's p-value < ``alpha``;
- *severity* from the normalised MMD m (and the proxy A-distance a when present):
  small if m < ``small_shift`` (and a < ``large_a_distance``); large if m ≥ ``large_shift``
  or a ≥ ``large_a_distance``; moderate otherwise (moderate too when neither is reported);
- *transferability* t: LEEP (else NCE) rescaled to t = 1 + score / log C ∈ [0, 1]
  (0 = no better than chance, 1 = perfect); reported only when the target has labels;
- *transfer predicted to hurt*: large shift and t < ``low_transferability``;
- L = target labels per class; "plenty" is L ≥ ``plenty_labels_per_class``;
- k = frozen leading blocks from the per-layer profile (:mod:`transferlab.selection.layers`).

The policy, first matching row wins (defaults in parentheses):

| # | condition                                              | method                          | why |
|---|--------------------------------------------------------|---------------------------------|-----|
| 0 | ``force_method`` set                                   | that method                     | the user overrode the evidence |
| 1 | p ≥ alpha (0.05)                                       | ``source-only``                 | no significant shift: no adaptation needed |
| 2 | L = 0                                                  | ``unsupervised_method`` (dann)  | only unlabelled target data can help; warns when the shift is large |
| 3 | hurt predicted and L ≥ ``target_only_min`` (10)        | ``target-only``                 | transfer predicted to hurt: negative-transfer warning |
| 4 | hurt predicted and L < ``target_only_min``             | ``finetune``                    | too few labels to drop the source; warns of negative transfer |
| 5 | L ≥ plenty (50), large shift                           | ``finetune``                    | labels support moving far from the source weights |
| 6 | L ≥ plenty, small or moderate shift                    | ``l2-sp``                       | adapt everything but keep the source weights as the prior |
| 7 | 0 < L < plenty, small or moderate shift, k = all blocks| ``linear-probe``                | the features transfer unchanged; retrain only the head |
| 8 | 0 < L < plenty, small or moderate shift, 0 < k < all   | ``layer-transfer`` (k)          | freeze the shared blocks, retrain the diverging ones |
| 9 | 0 < L < plenty, otherwise (k = 0, no profile, large)   | ``l2-sp``                       | few labels: fine-tune conservatively |

Every method considered is listed as a candidate with a rule preference score (1 = chosen,
lower = fallback, 0 = not eligible because it needs target labels and there are none).
"""

from __future__ import annotations

import math
from typing import Any

from transferlab.data.labels import DOMAIN_ADAPTATION, TASK_TRANSFER
from transferlab.errors import ConfigError, DataError
from transferlab.selection.candidates import UNSUPERVISED, DecisionBuilder, ineligibility
from transferlab.selection.config import SelectionConfig
from transferlab.selection.layers import FreezeDepth, freeze_depth
from transferlab.selection.result import Selection

# Name of the layer-transfer hyperparameter that holds the number of frozen leading blocks.
LAYER_TRANSFER_K = "k"


def report_value(d: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict) or d.get(key) is None:
            return None
        d = d[key]
    return d


def rescaled_transferability(report: dict, n_classes: int) -> tuple[float, str, float] | None:
    """(t in [0,1], score name, raw score) from LEEP or NCE; None when neither is reported."""
    scores = report.get("transferability") or {}
    for name in ("leep", "nce"):
        raw = scores.get(name)
        if raw is not None and math.isfinite(raw):
            return min(1.0, max(0.0, 1.0 + float(raw) / math.log(n_classes))), name, float(raw)
    return None


def measured_on(report: dict) -> str | None:
    """The feature space of the report's headline MMD (the source model's penultimate layer)."""
    mmd = report.get("mmd") or {}
    if mmd.get("feature_space"):
        return mmd["feature_space"]
    layer = mmd.get("features") or report.get("feature_layer")  # a report from before mmd.feature_space
    return f"the source model's '{layer}' features" if layer else None


def shift_severity(report: dict, config: SelectionConfig) -> tuple[str, str]:
    """(small | moderate | large, a sentence that says which number decided it).

    Either number at or above its "large" threshold makes the shift large, so the sentence names
    the one that did, and says so when the other alone would have called it smaller (listing both
    with their thresholds read as if "MMD 0.153, small below 0.2" had been called large)."""
    m = report_value(report, "mmd", "normalised")
    a = report.get("a_distance")
    if m is None and a is None:
        return "moderate", "The report gives no normalised MMD or A-distance, so the shift is treated as moderate."
    mmd_level = None if m is None else "large" if m >= config.large_shift else "small" if m < config.small_shift \
        else "moderate"
    a_large = a is not None and a >= config.large_a_distance
    level = "large" if mmd_level == "large" or a_large else mmd_level or "moderate"
    mmd_text = None if m is None else (
        f"normalised MMD {m:.3f} is " + {"large": f"at or above {config.large_shift:g}",
                                         "small": f"below {config.small_shift:g}",
                                         "moderate": f"between {config.small_shift:g} and {config.large_shift:g}"}[mmd_level])
    a_text = None if a is None else (
        f"proxy A-distance {a:.3f} is {'at or above' if a_large else 'below'} {config.large_a_distance:g}")
    scales = [f"normalised MMD: small below {config.small_shift:g}, large from {config.large_shift:g}"] * (m is not None)
    scales += [f"A-distance: large from {config.large_a_distance:g}"] * (a is not None)
    scale = f" ({'; '.join(scales)})"
    if a_large and mmd_level not in (None, "large"):
        return level, (f"The shift is large: the {a_text}, although the {mmd_text}, which alone would make it "
                       f"{mmd_level}{scale}.")
    if mmd_level is None:
        because = a_text if a_large else f"{a_text} and there is no normalised MMD to grade it"
    else:
        because = " and the ".join(t for t in (mmd_text, a_text) if t)
    return level, f"The shift is {level}: the {because}{scale}."


def select_by_rules(report: dict, labels_per_class: int, n_classes: int, config: SelectionConfig) -> Selection:
    """Pick a method from the similarity report and the label budget: on the task-transfer road by
    :mod:`transferlab.selection.new_task`, without source data by
    :mod:`transferlab.selection.source_free`, else by the policy table in the module doc."""
    if labels_per_class < 0:
        raise ConfigError(f"labels_per_class must be 0 or more, got {labels_per_class}")
    if n_classes < 2:
        raise ConfigError(f"n_classes must be at least 2, got {n_classes}")
    if report.get("road", DOMAIN_ADAPTATION) == TASK_TRANSFER:
        from transferlab.selection.new_task import select_new_task

        return select_new_task(report, labels_per_class, n_classes, config)
    if not report.get("source_data", True):
        from transferlab.selection.source_free import select_source_free

        return select_source_free(report, labels_per_class, n_classes, config)
    p = report_value(report, "mmd", "p_value")
    if p is None:
        raise DataError("the similarity report has no mmd.p_value, which rule-mode selection needs")
    b = DecisionBuilder(config, labels_per_class, sources=sources_with_data(report))
    L = labels_per_class
    level, severity_sentence = shift_severity(report, config)
    transfer = rescaled_transferability(report, n_classes)
    depth = freeze_depth(
        report.get("layers") or [], layer_shift=config.layer_shift, layer_jump=config.layer_jump, alpha=config.alpha
    )
    significant = p < config.alpha
    hurt = level == "large" and transfer is not None and transfer[0] < config.low_transferability
    b.evidence = {
        "p_value": p, "alpha": config.alpha, "significant": significant, "severity": level,
        "normalised_mmd": report_value(report, "mmd", "normalised"), "a_distance": report.get("a_distance"),
        "transferability": None if transfer is None else {"rescaled": transfer[0], "score": transfer[1], "raw": transfer[2]},
        "labels_per_class": L, "n_classes": n_classes, "transfer_predicted_to_hurt": hurt,
        "freeze_depth": None if depth is None else {"k": depth.k, "n_blocks": depth.n_blocks, "blocks": depth.blocks},
    }

    test = "The MMD permutation test" + (f" on {space}" if (space := measured_on(report)) else "")
    if significant:
        b.reasons.append(f"{test} finds a significant shift (p = {p:.3g} < alpha = {config.alpha:g}).")
    else:
        b.reasons.append(f"{test} finds no significant shift (p = {p:.3g} >= alpha = {config.alpha:g}).")
    b.reasons.append(severity_sentence)
    if transfer is not None:
        b.reasons.append(
            f"Transferability: {transfer[1].upper()} {transfer[2]:.3f}, rescaled to {transfer[0]:.2f} "
            f"(0 = chance, 1 = perfect; low below {config.low_transferability:g})."
        )
    b.reasons.append(
        f"The target has {L} labelled samples per class ({'none' if L == 0 else 'plenty' if L >= config.plenty_labels_per_class else 'few'}; "
        f"plenty from {config.plenty_labels_per_class})."
    )

    method, settings, fallbacks, why = _decide(b, significant, level, hurt, depth)
    return finish(b, method, settings, fallbacks, why, lambda forced: _settings_for(forced, depth))


def sources_with_data(report: dict) -> int:
    """How many candidate sources with data the similarity report ranked (1 without a ranking)."""
    ranking = (report.get("source_ranking") or {}).get("ranking")
    if not ranking:
        return 1
    return sum(r["measurements"].get("source_data", True) for r in ranking)


def finish(b: DecisionBuilder, method: str, settings: dict, fallbacks: list[str], why: str, settings_for) -> Selection:
    """The Selection for the rule's choice, or for ``force_method`` when it is set (with a warning when
    the forced method cannot run on this data)."""
    decided_by = "rules"
    forced = b.config.force_method
    if forced is not None:
        b.reasons.append(f"force_method is set, so '{forced}' is used instead of the evidence's choice '{method}'.")
        blocked = ineligibility(forced, b.road, b.labels, b.source_data, b.sources)
        if blocked and blocked != "not a registered method":
            b.warnings.append(f"'{forced}' {blocked}.")
        fallbacks = [method, *[f for f in fallbacks if f != forced]]
        method, settings, why, decided_by = forced, settings_for(forced), "forced by config.force_method", "force_method"
    return Selection(method=method, settings=settings, candidates=b.candidates(method, fallbacks, why),
                     reasons=b.reasons, mode="rule", warnings=b.warnings, decided_by=decided_by, evidence=b.evidence)


def _settings_for(method: str, depth: FreezeDepth | None) -> dict:
    if method == "layer-transfer" and depth is not None:
        return {LAYER_TRANSFER_K: depth.k}
    return {}


def _decide(
    b: DecisionBuilder, significant: bool, level: str, hurt: bool, depth: FreezeDepth | None
) -> tuple[str, dict, list[str], str]:
    """(method, settings, fallbacks in order of preference, short why) for rows 1–9 of the policy."""
    c, L = b.config, b.labels
    if not significant:
        b.reasons.append("No adaptation needed: the source model is used as it is.")
        return "source-only", {}, ["l2-sp", "linear-probe"] if L else [c.unsupervised_method], "no significant shift"
    if L == 0:
        b.reasons.append(
            f"Without target labels only unlabelled target data can help: unsupervised adaptation with "
            f"'{c.unsupervised_method}'."
        )
        if level == "large":
            b.warnings.append(
                "The shift is large and there are no target labels to check the result: adaptation may not help "
                "and could hurt (negative transfer); compare with source-only on the label-free validators."
            )
        others = [m for m in UNSUPERVISED if m != c.unsupervised_method] + ["source-only"]
        return c.unsupervised_method, {}, others, "significant shift and no target labels"
    if hurt:
        warning = (
            "Negative transfer predicted: the shift is large and the source features transfer poorly "
            f"(rescaled transferability below {c.low_transferability:g}), so reusing the source is expected to hurt."
        )
        b.warnings.append(warning)
        if L >= c.target_only_min_labels_per_class:
            b.reasons.append(
                f"With {L} labels per class (at least {c.target_only_min_labels_per_class}) a model trained on the "
                "target alone is expected to do better than any transfer."
            )
            return "target-only", {}, ["finetune", "l2-sp"], "transfer predicted to hurt and enough target labels"
        b.reasons.append(
            f"Only {L} labels per class (fewer than {c.target_only_min_labels_per_class}) is too few to drop the "
            "source entirely, so every layer is fine-tuned freely from the source weights."
        )
        b.warnings.append("Too few target labels for target-only; check the result against target-only in evaluation.")
        return "finetune", {}, ["target-only", "l2-sp"], "transfer predicted to hurt but too few labels for target-only"
    if L >= c.plenty_labels_per_class:
        if level == "large":
            b.reasons.append("A large shift with plenty of labels: fine-tune every layer from the source weights.")
            return "finetune", {}, ["l2-sp", "target-only"], "large shift with plenty of target labels"
        b.reasons.append(
            "Plenty of labels and a shift that is not large: fine-tune every layer while L2-SP keeps the weights "
            "near the source, which stays a good prior."
        )
        return "l2-sp", {}, ["finetune", "layer-transfer"], f"{level} shift with plenty of target labels"
    if level != "large" and depth is not None:
        b.reasons.append(f"Per-layer profile: {depth.reason}.")
        if depth.k == depth.n_blocks:
            b.reasons.append("Every feature block transfers, so only the head is retrained (linear probe).")
            return "linear-probe", {}, ["layer-transfer", "l2-sp"], f"{level} shift, all feature blocks shared"
        if depth.k > 0:
            b.reasons.append(
                f"Layer transfer: copy and freeze the first {depth.k} blocks ({', '.join(depth.blocks[:depth.k])}), "
                f"retrain the remaining {depth.n_blocks - depth.k} and the head."
            )
            return (
                "layer-transfer", {LAYER_TRANSFER_K: depth.k}, ["l2-sp", "linear-probe"],
                f"{level} shift, {depth.k} of {depth.n_blocks} blocks shared",
            )
    if depth is None:
        b.reasons.append("The report has no per-layer profile, so no block can be shown to be shared.")
    elif level == "large":
        b.reasons.append("The shift is large, so no block is assumed to transfer frozen.")
    else:
        b.reasons.append(f"Per-layer profile: {depth.reason}; no block is shared.")
    b.reasons.append("With few labels every layer is fine-tuned conservatively: L2-SP keeps weights near the source.")
    return "l2-sp", {}, ["finetune", c.unsupervised_method], "few labels and no shared blocks to freeze"
