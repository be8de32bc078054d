"""Rule mode with a source model and no source data (the domain-adaptation road, source-free).

No two-sample test can say whether the target has shifted: the report carries what the model
itself can show (its normalisation statistics against the target's, its confidence on the target;
:mod:`transferlab.similarity.source_free`). Adapting is then the default, and evaluation checks it
against the model as it is (source-only) on held-out target data.

| # | condition                                   | method                              | why |
|---|---------------------------------------------|-------------------------------------|-----|
| 0 | ``force_method`` set                        | that method                         | the user overrode the evidence |
| 1 | L = 0                                       | ``source_free_method`` (shot)       | only the model and unlabelled target data can help |
| 2 | L ≥ plenty (50)                             | ``l2-sp``                           | labels support adapting every layer |
| 3 | 0 < L < plenty, LogME peaks at the last block | ``linear-probe``                  | the features transfer |
| 4 | 0 < L < plenty, LogME peaks at block k      | ``layer-transfer`` (k)              | freeze up to the peak |
| 5 | otherwise                                   | ``l2-sp``                           | few labels, no profile |

``tent`` needs normalisation layers with affine parameters; when the model has none it is not a candidate (and not the
choice, even if ``source_free_method`` names it: shot is used and the reason says so).
"""

from __future__ import annotations

from transferlab.data.labels import DOMAIN_ADAPTATION
from transferlab.selection.candidates import DecisionBuilder
from transferlab.selection.config import SelectionConfig
from transferlab.selection.result import Selection
from transferlab.selection.rules import LAYER_TRANSFER_K, finish


def _evidence(b: DecisionBuilder, report: dict, n_classes: int) -> tuple[dict | None, bool]:
    norm = report.get("normalisation") or {}
    pred = report.get("predictions") or {}
    has_bn = bool(norm.get("layers"))
    can_tent = bool(report.get("affine_norm_layers"))
    depth = report.get("depth")
    b.evidence = {"road": DOMAIN_ADAPTATION, "source_data": False, "labels_per_class": b.labels,
                  "n_classes": n_classes, "bn_symmetric_kl": norm.get("mean_symmetric_kl"),
                  "confidence": pred.get("confidence"), "class_spread": pred.get("class_spread"), "depth": depth}
    b.reasons.append("There is no source data, so no test can say whether the target has shifted (no MMD); "
                     "the model itself is compared with the target instead.")
    if has_bn:
        b.reasons.append(f"Its batch-norm statistics differ from the target's by a mean symmetric KL of "
                         f"{norm['mean_symmetric_kl']:.3f} per channel (0 = the target looks like the source).")
    else:
        b.reasons.append("It has no batch-norm layers, so it carries no source statistics.")
    if not can_tent:
        b.reasons.append("It has no normalisation layers with affine parameters, so tent cannot run.")
    if pred:
        b.reasons.append(f"On the target it is {100 * pred['confidence']:.0f} % confident on average and spreads its "
                         f"predictions to {pred['class_spread']:.2f} of the maximal class entropy.")
    return depth, can_tent


def select_source_free(report: dict, labels_per_class: int, n_classes: int, config: SelectionConfig) -> Selection:
    """The policy table of the module doc."""
    b = DecisionBuilder(config, labels_per_class, road=DOMAIN_ADAPTATION, source_data=False)
    depth, can_tent = _evidence(b, report, n_classes)
    L = labels_per_class
    if L == 0:
        method = config.source_free_method
        if method == "tent" and not can_tent:
            b.reasons.append("source_free_method is 'tent', but the model has no normalisation layers: shot instead.")
            method = "shot"
        b.reasons.append(f"Without target labels or source data: source-free adaptation with '{method}'.")
        others = [m for m in ("shot", "tent") if m != method and (m != "tent" or can_tent)] + ["source-only"]
        return finish(b, method, {}, others, "no target labels and no source data", lambda name: {})
    b.reasons.append(f"The target has {L} labelled samples per class.")
    if L >= config.plenty_labels_per_class or not depth:
        b.reasons.append("Fine-tune every layer conservatively: L2-SP keeps the weights near the source's.")
        return finish(b, "l2-sp", {}, ["finetune", "linear-probe"], "labelled target, no source data", lambda name: {})
    b.reasons.append(f"Per-block transferability: {depth['reason']}.")
    settings = {LAYER_TRANSFER_K: depth["k"]}
    if depth["k"] >= depth["n_blocks"]:
        return finish(b, "linear-probe", {}, ["layer-transfer", "l2-sp"], "LogME peaks at the last block",
                      lambda name: settings if name == "layer-transfer" else {})
    return finish(b, "layer-transfer", settings, ["linear-probe", "l2-sp"], f"LogME peaks at block {depth['k']}",
                  lambda name: settings if name == "layer-transfer" else {})
