"""Rule mode on the task-transfer road: the target's classes are new, so what transfers is the
source network's layers, never its head. The evidence is the per-block transferability profile
of the similarity report (:mod:`transferlab.similarity.block_scores`): which block's features
explain the target's labels best, and whether any explains them better than the raw pixels.

| # | condition                                                   | method                  | why |
|---|-------------------------------------------------------------|-------------------------|-----|
| 0 | ``force_method`` set                                        | that method             | the user overrode the evidence |
| 1 | no block beats the pixels and L ≥ ``target_only_min`` (10)  | ``target-only``         | transfer predicted to hurt |
| 2 | L ≤ ``few_shot`` (5) and source data                        | ``multitask``           | the source task keeps the shared layers honest |
| 3 | LogME peaks at block k                                      | ``layer-transfer`` (k, at most all but the last) | freeze up to the peak, retrain the rest |
| 4 | no profile                                                  | ``l2-sp`` (new head)    | nothing says which layers transfer |

L is the labelled target samples per class; a new task with none is refused (by prepare), unless
a class–attribute table makes it zero-shot (:mod:`transferlab.selection.zero_shot`).

Why this table (``benchmarks/new_task.py --suite tuning``: mnist5k digits 5-9 → mnist5k and →
uci-digits 0-4, k = 1, 5, 10, 50, 3 seeds; the held-out pairs were not looked at). Multitask
(one trunk, the source head and a new target head trained together) was the best arm at k = 1 on
both pairs (85.3 and 80.2 % against 76.5 and 76.7 for target-only) and within 0.5 points of the
best at k = 5; layer transfer at the LogME depth was best or within 1 point of it at k = 10 and 50.
The input shift between two different sets of classes is large by construction, so the MMD
severity says nothing about how far to fine-tune here (rules on it chose finetune at k = 50,
2.8 points below the best). With fewer than ``target_only_min`` labels per class the profile
is too noisy to predict harm (at k = 1 it did once, and finetune came 3.0 points below
multitask), so it only warns. The linear probe trailed every other head-on-layers method at every
k (76.3 against 85.3 % at k = 1, 90.5 against 96.5 at k = 50 on mnist5k), so a peak at the last
block still retrains that block. Prototypical networks, the classic few-shot answer, trailed at every
k on this suite (72.6 / 56.7 / 72.5 % at k = 1 on mnist5k, below target-only): with five source
classes every episode sees all of them, and there is little to learn to compare with. protonet stays a
trial-mode candidate and can be forced.
"""

from __future__ import annotations

from transferlab.data.labels import TASK_TRANSFER
from transferlab.errors import DataError
from transferlab.selection.candidates import DecisionBuilder
from transferlab.selection.config import SelectionConfig
from transferlab.selection.result import Selection
from transferlab.selection.rules import LAYER_TRANSFER_K, finish, report_value, shift_severity


def _evidence(b: DecisionBuilder, report: dict, n_classes: int) -> dict | None:
    spaces = report.get("label_spaces") or {}
    depth = report.get("depth")
    level = shift_severity(report, b.config)[0] if report_value(report, "mmd", "normalised") is not None else None
    other = len(set(spaces.get("source_classes", [])) - set(spaces.get("target_classes", [])))
    b.evidence = {"road": TASK_TRANSFER, "labels_per_class": b.labels, "n_classes": n_classes, "severity": level,
                  "normalised_mmd": report_value(report, "mmd", "normalised"), "depth": depth,
                  "meta_training_classes": other, "source_data": b.source_data,
                  "transfer_predicted_to_hurt": bool(depth and depth["hurt"])}
    b.reasons.append(spaces.get("sentence", "The target's classes are not the source's: task transfer."))
    if level is not None:
        b.reasons.append(shift_severity(report, b.config)[1])
    if depth:
        b.reasons.append(f"Per-block transferability: {depth['reason']}.")
    else:
        b.reasons.append("The report has no per-block transferability profile.")
    c = b.config
    b.reasons.append(f"The target has {b.labels} labelled samples per class "
                     f"({'few' if b.labels <= c.few_shot_labels_per_class else 'more than few'}; few up to "
                     f"{c.few_shot_labels_per_class}).")
    return depth


def select_new_task(report: dict, labels_per_class: int, n_classes: int, config: SelectionConfig) -> Selection:
    """The policy table of the module doc."""
    if labels_per_class == 0:
        raise DataError("the target is a new task (its classes are not the source's) and has no labelled samples; "
                        "set data.target_labels_per_class to 1 or more, or give a class–attribute table "
                        "(data.attributes) for zero-shot transfer")
    b = DecisionBuilder(config, labels_per_class, road=TASK_TRANSFER, source_data=report.get("source_data", True))
    depth = _evidence(b, report, n_classes)
    method, settings, fallbacks, why = _decide(b, depth)

    def settings_for(name: str) -> dict:
        return {LAYER_TRANSFER_K: min(depth["k"], depth["n_blocks"] - 1)} if name == "layer-transfer" and depth else {}
    return finish(b, method, settings, b.eligible(fallbacks), why, settings_for)


def _decide(b: DecisionBuilder, depth: dict | None) -> tuple[str, dict, list[str], str]:
    c, L = b.config, b.labels
    if depth and depth["hurt"]:
        b.warnings.append("Negative transfer predicted: no block of the source network explains the target's labels "
                          "better than the raw pixels.")
        if L >= c.target_only_min_labels_per_class:
            b.reasons.append(f"With {L} labels per class a network trained on the target alone is expected to do better.")
            return "target-only", {}, ["layer-transfer", "finetune"], "transfer predicted to hurt and enough labels"
        b.reasons.append(f"With {L} labels per class the profile is too noisy to drop the source on its word alone.")
    if L <= c.few_shot_labels_per_class and b.source_data:
        b.reasons.append(f"Few labels ({L} per class, few from {c.few_shot_labels_per_class} down) and source data: "
                         "multitask learning trains a new head for the target with the source head beside it, so the "
                         "source task keeps the shared layers from fitting the handful of target samples.")
        return "multitask", {}, ["layer-transfer", "l2-sp"], f"{L} labels per new class and source data to train with"
    if depth:
        k = min(depth["k"], depth["n_blocks"] - 1)
        if k < depth["k"]:
            b.reasons.append("LogME peaks at the last block, but a frozen last block (the linear probe) trailed every "
                             "other way of transferring on the tuning suite: the last block is retrained too.")
        b.reasons.append(f"Layer transfer: copy and freeze the first {k} blocks "
                         f"({', '.join(depth['blocks'][:k])}), retrain the rest under a new head.")
        return "layer-transfer", {LAYER_TRANSFER_K: k}, ["multitask", "l2-sp"], f"LogME peaks at block {depth['k']}"
    b.reasons.append("Without a profile nothing says which blocks transfer: fine-tune conservatively with L2-SP.")
    return "l2-sp", {}, ["linear-probe", "finetune"], "no per-block profile"
