"""Rule mode on the task-transfer road: the target's classes are new, so what transfers is the
source network's layers, never its head. The evidence is the per-block transferability profile
of the similarity report (:mod:`transferlab.similarity.block_scores`): which block's features
explain the target's labels best, and whether any explains them better than the raw pixels.

| # | condition                                                   | method                  | why |
|---|-------------------------------------------------------------|-------------------------|-----|
| 0 | ``force_method`` set                                        | that method             | the user overrode the evidence |
| 1 | no block beats the pixels and L ≥ ``target_only_min`` (10)  | ``target-only``         | transfer predicted to hurt |
| 2 | no block beats the pixels and L < ``target_only_min``       | ``finetune``            | too few labels to drop the source; warns |
| 3 | L ≥ plenty (50), large shift                                | ``finetune``            | labels support moving far from the source |
| 4 | L ≥ plenty                                                  | ``l2-sp`` (new head)    | adapt everything, source weights as the prior |
| 5 | L ≤ ``few_shot`` (5), source data with ≥ 2 other classes    | ``protonet``            | learn to compare from the source's own classes |
| 6 | LogME peaks at the last block                               | ``linear-probe``        | every block transfers |
| 7 | LogME peaks at block k < last                               | ``layer-transfer`` (k)  | freeze up to the peak, retrain the rest |
| 8 | no profile                                                  | ``l2-sp`` (new head)    | nothing says which layers transfer |

L is the labelled target samples per class; a new task with none is refused (by prepare).
"""

from __future__ import annotations

from transferlab.data.labels import TASK_TRANSFER
from transferlab.errors import DataError
from transferlab.selection.candidates import DecisionBuilder
from transferlab.selection.config import SelectionConfig
from transferlab.selection.result import Selection
from transferlab.selection.rules import LAYER_TRANSFER_K, finish, report_value, shift_severity


def _evidence(b: DecisionBuilder, report: dict, n_classes: int) -> tuple[dict | None, str | None, int]:
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
                     f"({'plenty' if b.labels >= c.plenty_labels_per_class else 'few-shot' if b.labels <= c.few_shot_labels_per_class else 'few'}; "
                     f"plenty from {c.plenty_labels_per_class}, few-shot up to {c.few_shot_labels_per_class}).")
    return depth, level, other


def select_new_task(report: dict, labels_per_class: int, n_classes: int, config: SelectionConfig) -> Selection:
    """The policy table of the module doc."""
    if labels_per_class == 0:
        raise DataError("the target is a new task (its classes are not the source's) and has no labelled samples; "
                        "set data.target_labels_per_class to 1 or more")
    b = DecisionBuilder(config, labels_per_class, road=TASK_TRANSFER, source_data=report.get("source_data", True))
    depth, level, other = _evidence(b, report, n_classes)
    method, settings, fallbacks, why = _decide(b, depth, level, other)

    def settings_for(name: str) -> dict:
        return {LAYER_TRANSFER_K: min(depth["k"], depth["n_blocks"])} if name == "layer-transfer" and depth else {}
    return finish(b, method, settings, b.eligible(fallbacks), why, settings_for)


def _decide(b: DecisionBuilder, depth: dict | None, level: str | None, other: int) -> tuple[str, dict, list[str], str]:
    c, L = b.config, b.labels
    if depth and depth["hurt"]:
        b.warnings.append("Negative transfer predicted: no block of the source network explains the target's labels "
                          "better than the raw pixels.")
        if L >= c.target_only_min_labels_per_class:
            b.reasons.append(f"With {L} labels per class a network trained on the target alone is expected to do better.")
            return "target-only", {}, ["linear-probe", "finetune"], "transfer predicted to hurt and enough labels"
        b.reasons.append(f"Only {L} labels per class is too few to drop the source: every layer is fine-tuned freely.")
        return "finetune", {}, ["target-only", "linear-probe"], "transfer predicted to hurt, too few labels to drop it"
    if L >= c.plenty_labels_per_class:
        if level == "large":
            b.reasons.append("Plenty of labels and a large shift: fine-tune every layer under a new head.")
            return "finetune", {}, ["l2-sp", "target-only"], "large shift with plenty of target labels"
        b.reasons.append("Plenty of labels: fine-tune every layer under a new head, L2-SP keeping the layers near "
                         "the source's.")
        return "l2-sp", {}, ["finetune", "linear-probe"], "plenty of target labels"
    if L <= c.few_shot_labels_per_class and b.source_data and other >= 2:
        b.reasons.append(f"Few-shot: prototypical networks learn to compare on episodes of the source's {other} "
                         "classes the target does not have, then classify the new classes by their nearest prototype.")
        return "protonet", {}, ["linear-probe", "layer-transfer"], f"{L} labels per new class and {other} source classes to learn from"
    if depth:
        if depth["k"] >= depth["n_blocks"]:
            b.reasons.append("Every block transfers: freeze them and train only a new head (linear probe).")
            return "linear-probe", {}, ["layer-transfer", "l2-sp"], "LogME peaks at the last block"
        b.reasons.append(f"Layer transfer: copy and freeze the first {depth['k']} blocks "
                         f"({', '.join(depth['blocks'][:depth['k']])}), retrain the rest under a new head.")
        return "layer-transfer", {LAYER_TRANSFER_K: depth["k"]}, ["linear-probe", "l2-sp"], f"LogME peaks at block {depth['k']}"
    b.reasons.append("Without a profile nothing says which blocks transfer: fine-tune conservatively with L2-SP.")
    return "l2-sp", {}, ["linear-probe", "finetune"], "no per-block profile"
