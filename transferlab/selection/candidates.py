"""The candidate table every rule-mode decision carries: each method considered, whether it can
run on this road with this data, its rule preference, and one sentence why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transferlab.data.labels import DOMAIN_ADAPTATION, TASK_TRANSFER
from transferlab.errors import ConfigError
from transferlab.selection.config import SelectionConfig

# One line per method for the candidate table.
ABOUT: dict[str, str] = {
    "source-only": "uses the source model unchanged; right when the domains match",
    "target-only": "trains on the labelled target alone; right when transfer would hurt",
    "linear-probe": "freezes the features and retrains the head; right when features transfer as they are",
    "layer-transfer": "freezes the first k blocks and retrains the rest",
    "l2-sp": "fine-tunes everything with a penalty on distance to the source weights",
    "finetune": "fine-tunes every layer; needs plenty of labels",
    "dann": "domain-adversarial alignment of features with unlabelled target data",
    "cdan": "class-conditional adversarial alignment with unlabelled target data",
    "dan": "multi-kernel MMD alignment of task layers with unlabelled target data",
    "deep-coral": "aligns feature covariances with unlabelled target data",
    "multi-source": "trains on every candidate source at once, each weighted to bound the target error",
    "mcc": "minimises the class confusion of its predictions on unlabelled target data",
    "adamatch": "self-training: strong-augmentation consistency with aligned, thresholded target pseudo-labels",
    "mean-teacher": "self-ensembling: a moving-average teacher's confident target predictions train the student",
    "shot": "source-free: information maximisation and self-labelling of the target, source head frozen",
    "tent": "source-free: entropy minimisation of the normalisation layers on the target",
    "protonet": "episodic training on the source's other classes, then nearest prototype of the new ones",
    "progressive": "a frozen source column plus a new column trained on the target labels",
    "multitask": "one trunk, a source head and a target head trained together",
    "eszsl": "zero-shot: closed-form bilinear map from source features to class attributes",
    "dap": "zero-shot: per-attribute classifiers, classes scored by attribute posteriors over priors",
}
UNSUPERVISED = ("dann", "cdan", "dan", "deep-coral")
SOURCE_FREE = ("shot", "tent")
LABELLED = ("linear-probe", "layer-transfer", "l2-sp", "finetune")
NEW_TASK = ("target-only", "linear-probe", "layer-transfer", "l2-sp", "finetune", "protonet", "progressive",
            "multitask")


def ineligibility(name: str, road: str, labels: int, source_data: bool, sources: int = 1) -> str | None:
    """Why ``name`` cannot run here (None when it can), from what the method declares it needs;
    ``sources``: how many candidate sources with data the run has (data.sources)."""
    from transferlab.methods import get_method

    try:
        cls = get_method(name)
    except ConfigError:
        return "not a registered method"
    if cls.needs_target_labels and labels == 0:
        return "needs target labels and there are none"
    if cls.shared_label_space and road == TASK_TRANSFER:
        return "needs the target to have the source's classes, and this target is a new task"
    if cls.new_task_only and road == DOMAIN_ADAPTATION:
        return "is for new classes, and the target has the source's classes"
    if cls.uses_source and not source_data:
        return "trains with source data, and there is only a source model"
    if cls.needs_several_sources and sources < 2:
        return "trains on several candidate sources (data.sources), and there is one"
    return None


@dataclass
class DecisionBuilder:
    """Collects a rule decision's reasons, warnings, evidence and candidate table."""

    config: SelectionConfig
    labels: int
    road: str = DOMAIN_ADAPTATION
    source_data: bool = True
    sources: int = 1
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    def default_names(self) -> list[str]:
        if self.road == TASK_TRANSFER:
            return [*NEW_TASK, "source-only", *UNSUPERVISED]
        if not self.source_data:
            return ["source-only", *SOURCE_FREE, "target-only", *LABELLED, *UNSUPERVISED]
        return ["source-only", "target-only", *LABELLED, *UNSUPERVISED]

    def candidates(self, chosen: str, fallbacks: list[str], chosen_why: str) -> list[dict]:
        names = self.default_names()
        for extra in (chosen, self.config.unsupervised_method, *fallbacks):
            if extra not in names:
                names.append(extra)
        out = []
        for name in names:
            about = ABOUT.get(name, "a registered transfer method")
            blocked = ineligibility(name, self.road, self.labels, self.source_data, self.sources)
            if name == chosen:
                score, why = 1.0, f"chosen: {chosen_why}"
            elif blocked:
                score, why = 0.0, f"{blocked}; {about}"
            elif name in fallbacks:
                score, why = round(0.9 - 0.1 * fallbacks.index(name), 2), f"fallback: {about}"
            else:
                score, why = 0.1, about
            out.append({"method": name, "score": score, "eligible": blocked is None, "why": why})
        return out

    def eligible(self, names: list[str]) -> list[str]:
        return [n for n in names if ineligibility(n, self.road, self.labels, self.source_data, self.sources) is None]
