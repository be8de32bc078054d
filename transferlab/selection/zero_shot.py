"""Rule mode on the zero-shot road: the target brings classes the source never had, no label of
them, and a class–attribute table (``data.attributes``). Nothing but the table can name the new
classes, so the choice is between the two ways of predicting through it:

| # | condition            | method   | why |
|---|----------------------|----------|-----|
| 0 | ``force_method`` set | that one | the user overrode the rule |
| 1 | otherwise            | ``eszsl`` (fallback ``dap``) | see below |

ESZSL (Romera-Paredes & Torr 2015) learns one linear map from features to the whole signature,
so it uses the correlations between attributes and continuous values as they are; its two
regularisers are chosen on pseudo-unseen *seen* classes, with no unseen label. DAP (Lampert et al.
2009) trains each attribute on its own and needs binary values (a continuous table is thresholded).
Romera-Paredes & Torr report ESZSL above DAP on the attribute benchmarks of their paper, and
``benchmarks/zero_shot.py`` (RESULTS.md, section zero-shot) measures both on the digits table.
"""

from __future__ import annotations

from transferlab.data.labels import TASK_TRANSFER
from transferlab.selection.candidates import DecisionBuilder
from transferlab.selection.config import SelectionConfig
from transferlab.selection.result import Selection
from transferlab.selection.rules import finish


def is_zero_shot(road: str, labels_per_class: int, attributes: dict | None, new_classes) -> bool:
    """A new task with new classes, no target label and a class–attribute table: the zero-shot road."""
    return road == TASK_TRANSFER and labels_per_class == 0 and attributes is not None and bool(new_classes)


def select_zero_shot(report: dict, attributes: dict, config: SelectionConfig, mode_note: str | None = None
                     ) -> Selection:
    """The policy of the module doc. ``attributes``: the prepared table (``ClassAttributes.to_dict``)."""
    spaces = report.get("label_spaces") or {}
    new = spaces.get("new_classes", [])
    rows = attributes.get("rows", {})
    binary = all(v in (0.0, 1.0) for row in rows.values() for v in row)
    b = DecisionBuilder(config, 0, road=TASK_TRANSFER, source_data=report.get("source_data", True))
    b.evidence = {"road": TASK_TRANSFER, "zero_shot": True, "labels_per_class": 0, "unseen_classes": new,
                  "seen_classes": [c for c in spaces.get("target_classes", []) if c not in set(new)],
                  "attribute_table": attributes.get("source"), "n_attributes": len(attributes.get("attributes", [])),
                  "binary_attributes": binary}
    b.reasons.append(spaces.get("sentence", "The target's classes are not the source's: task transfer."))
    b.reasons.append(f"No labelled target sample, and {len(new)} target classes the source never had "
                     f"({', '.join(new)}): only the class–attribute table {attributes.get('source')} "
                     f"({len(attributes.get('attributes', []))} attributes) can name them, so this is zero-shot "
                     "transfer, fitted on the source features of the seen classes only.")
    if mode_note:
        b.reasons.append(mode_note)
    b.reasons.append("ESZSL maps the source features to the whole attribute signature in closed form, using the "
                     "attributes' correlations" + ("" if binary else " and their continuous values") +
                     "; its regularisers are chosen on pseudo-unseen seen classes, never on an unseen label. "
                     "DAP (independent attribute classifiers" + ("" if binary else ", on a thresholded table") +
                     ") is the fallback.")
    return finish(b, "eszsl", {}, ["dap"], "zero-shot through the attribute table", lambda name: {})
