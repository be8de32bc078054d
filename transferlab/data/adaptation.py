"""What a method may train on: the source and target splits, never the target test split.

Here rather than in :mod:`transferlab.methods` so that the stages that only read data (validate,
similarity) do not import every method, and so do not depend on their code in dvc.yaml.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial

from transferlab.data.attributes import ClassAttributes
from transferlab.data.labels import LabelSpaces, Road
from transferlab.data.types import Domain
from transferlab.errors import DataError


@dataclass(frozen=True, eq=False)
class SourceCandidate:
    """Another candidate source with data (data.sources), beside the one a run adapts from. Its
    splits are read on first use, by ``read`` (a stage builds each candidate's dataset from its
    recipe, which costs seconds): only the methods that train on several sources touch them."""

    name: str
    classes: tuple[str, ...]
    read: Callable[[], tuple[Domain, Domain]] = field(repr=False)

    @classmethod
    def of(cls, name: str, train: Domain, val: Domain) -> SourceCandidate:
        """A candidate whose splits are already in memory."""
        return cls(name, tuple(train.classes), partial(_given, train, val))

    @cached_property
    def splits(self) -> tuple[Domain, Domain]:
        return self.read()

    @property
    def train(self) -> Domain:
        return self.splits[0]

    @property
    def val(self) -> Domain:
        return self.splits[1]


def _given(train: Domain, val: Domain) -> tuple[Domain, Domain]:
    return train, val


@dataclass(frozen=True)
class AdaptationData:
    """Everything a method may train or choose checkpoints with (never target test data).

    ``source_train`` / ``source_val`` are None when there is only a source model and no source
    data (source-free); ``source_classes`` then names the model's output classes (by default they
    are the source data's). The target's classes are its splits' own; where they differ from the
    source's, the road is task transfer (:mod:`transferlab.data.labels`).
    """

    source_train: Domain | None = None
    source_val: Domain | None = None
    target_labelled: Domain | None = None
    target_unlabelled: Domain | None = None
    source_classes: tuple[str, ...] | None = None
    class_attributes: ClassAttributes | None = None
    other_sources: tuple[SourceCandidate, ...] = ()

    def __post_init__(self) -> None:
        if self.source_classes is None:
            if self.source_train is None:
                raise DataError("adaptation data without source data must name the source model's classes")
            object.__setattr__(self, "source_classes", tuple(self.source_train.classes))
        else:
            object.__setattr__(self, "source_classes", tuple(self.source_classes))
        for other in self.other_sources:
            if other.classes != self.source_classes:
                raise DataError(f"candidate source '{other.name}' has other classes ({list(other.classes)}) "
                                f"than the source ({list(self.source_classes)})")
        for dom in (self.target_labelled, self.target_unlabelled):
            if dom is not None and len(dom) and tuple(dom.classes) != self.target_classes:
                raise DataError(f"the target splits disagree on their classes ({list(dom.classes)} against "
                                f"{list(self.target_classes)})")

    @property
    def has_source_data(self) -> bool:
        return self.source_train is not None and len(self.source_train) > 0

    @property
    def target_classes(self) -> tuple[str, ...]:
        for dom in (self.target_labelled, self.target_unlabelled):
            if dom is not None and len(dom):
                return tuple(dom.classes)
        return tuple(self.source_classes)

    @property
    def label_spaces(self) -> LabelSpaces:
        return LabelSpaces(tuple(self.source_classes), self.target_classes)

    @property
    def road(self) -> Road:
        return self.label_spaces.road

    @property
    def n_target_classes(self) -> int:
        return len(self.target_classes)

    @property
    def n_target_labels(self) -> int:
        return 0 if self.target_labelled is None else len(self.target_labelled)

    @property
    def n_target_unlabelled(self) -> int:
        return 0 if self.target_unlabelled is None else len(self.target_unlabelled)
