"""Label spaces of source and target, and the road through the pipeline they decide.

Same classes (as sets) → **domain adaptation**: the source classifier's outputs mean what the
target's labels mean, so a model can be adapted to the new inputs and keep its head. Different
classes, disjoint or partly shared → **task transfer**: what transfers is the source network's
layers, never its head, and every method that puts a new head on them trains it on the target's
own labels. Classes are matched by name, so a target whose label *indices* agree with the source's
but whose names do not is a new task, and one with the same names in another order is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from transferlab.data.types import Domain
from transferlab.errors import DataError

Road = Literal["domain-adaptation", "task-transfer"]
DOMAIN_ADAPTATION: Road = "domain-adaptation"
TASK_TRANSFER: Road = "task-transfer"


@dataclass(frozen=True)
class LabelSpaces:
    source: tuple[str, ...]
    target: tuple[str, ...]

    @property
    def road(self) -> Road:
        return DOMAIN_ADAPTATION if set(self.source) == set(self.target) else TASK_TRANSFER

    @property
    def shared(self) -> tuple[str, ...]:
        return tuple(c for c in self.target if c in set(self.source))

    @property
    def only_source(self) -> tuple[str, ...]:
        return tuple(c for c in self.source if c not in set(self.target))

    @property
    def only_target(self) -> tuple[str, ...]:
        return tuple(c for c in self.target if c not in set(self.source))

    def sentence(self) -> str:
        if self.road == DOMAIN_ADAPTATION:
            return f"Source and target share their {len(self.source)} classes: domain adaptation."
        if not self.shared:
            return (f"The target's {len(self.target)} classes are all new to the source ({len(self.source)} classes): "
                    "task transfer.")
        return (f"The target has {len(self.only_target)} new classes and shares {len(self.shared)} with the source "
                f"({_names(self.shared)}): task transfer.")

    def to_dict(self) -> dict:
        return {"road": self.road, "source_classes": list(self.source), "target_classes": list(self.target),
                "shared_classes": list(self.shared), "new_classes": list(self.only_target),
                "sentence": self.sentence()}


def _names(names: tuple[str, ...], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def label_spaces(source_classes, target_classes) -> LabelSpaces:
    source, target = tuple(map(str, source_classes)), tuple(map(str, target_classes))
    for what, names in (("source", source), ("target", target)):
        if len(set(names)) != len(names):
            raise DataError(f"the {what} has duplicate class names: {_names(tuple(sorted(names)))}")
        if len(names) < 2:
            raise DataError(f"the {what} has {len(names)} class; a classifier needs at least 2")
    return LabelSpaces(source, target)


def reorder_classes(domain: Domain, classes: tuple[str, ...]) -> Domain:
    """``domain`` with its labels re-indexed to ``classes``, a permutation of its own class names
    (a domain-adaptation target then speaks the source head's language)."""
    if tuple(domain.classes) == tuple(classes):
        return domain
    if set(domain.classes) != set(classes):
        raise DataError(f"domain '{domain.name}' has classes {list(domain.classes)}, not a reordering of {list(classes)}")
    index = {name: i for i, name in enumerate(classes)}
    mapping = np.array([index[name] for name in domain.classes], dtype=np.int64)
    return Domain(domain.name, domain.x, mapping[domain.y], tuple(classes))


def select_classes(domain: Domain, names: list[str]) -> Domain:
    """Only the samples of the classes ``names``, re-indexed in that order (e.g. digits 0-4 as one
    task and 5-9 as another, from the same dataset)."""
    names = [str(n) for n in names]
    missing = [n for n in names if n not in domain.classes]
    if missing:
        raise DataError(f"dataset '{domain.name}' has no class {', '.join(repr(m) for m in missing)} "
                        f"(its classes: {_names(tuple(domain.classes), 12)})")
    if len(set(names)) != len(names):
        raise DataError(f"the class list for '{domain.name}' names a class twice: {names}")
    old = [domain.classes.index(n) for n in names]
    keep = np.flatnonzero(np.isin(domain.y, old))
    mapping = np.full(domain.num_classes, -1, dtype=np.int64)
    mapping[old] = np.arange(len(old))
    kept = domain.subset(keep)
    return Domain(domain.name, kept.x, mapping[kept.y], tuple(names))
