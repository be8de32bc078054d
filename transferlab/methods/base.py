"""What a transfer method is: the data it may see, its typed hyperparameters, its ``fit``.

A method never sees the target test split: :class:`AdaptationData` has no field for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from transferlab.data.types import Domain
from transferlab.errors import ConfigError, DataError, MethodRequirementError
from transferlab.training import AdaptResult, TrainSettings
from transferlab.training.loop import LogFn

__all__ = ["AdaptResult", "AdaptationData", "Method", "MethodConfig", "UnsupervisedConfig"]


@dataclass(frozen=True)
class AdaptationData:
    """Everything a method may train or choose checkpoints with (never target test data)."""

    source_train: Domain
    source_val: Domain
    target_labelled: Domain | None = None
    target_unlabelled: Domain | None = None

    @property
    def n_target_labels(self) -> int:
        return 0 if self.target_labelled is None else len(self.target_labelled)

    @property
    def n_target_unlabelled(self) -> int:
        return 0 if self.target_unlabelled is None else len(self.target_unlabelled)


class MethodConfig(BaseModel):
    """Base of every method's hyperparameters: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class UnsupervisedConfig(MethodConfig):
    """Hyperparameters shared by the methods that adapt with unlabelled target data."""

    trade_off: float = Field(1.0, ge=0, description="weight of the alignment loss against source cross-entropy")
    checkpoint: Literal["auto", "target-labelled", "information-maximisation", "source-val-accuracy"] = Field(
        "auto",
        description="what chooses the checkpoint; 'auto': accuracy on the labelled target samples when there "
                    "are some (the method does not train on them), else information maximisation on the "
                    "unlabelled target (label-free)",
    )


class Method(ABC):
    """A transfer method. Subclasses set the ClassVars and implement :meth:`train`.

    ``needs_target_labels``: refuses to run without labelled target samples.
    ``uses_unlabelled_target``: trains with unlabelled target inputs (``needs_unlabelled_target``
    says whether it refuses to run without them). ``uses_source``: trains with source data
    during adaptation (not only the source model).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    needs_target_labels: ClassVar[bool] = False
    uses_unlabelled_target: ClassVar[bool] = False
    needs_unlabelled_target: ClassVar[bool] = False
    uses_source: ClassVar[bool] = False
    trains: ClassVar[bool] = True  # False: returns the source model as it is (costs no training)
    Config: ClassVar[type[MethodConfig]] = MethodConfig

    def fit(self, source_model: nn.Module, data: AdaptationData, config: MethodConfig | dict | None,
            settings: TrainSettings, log: LogFn | None = None) -> AdaptResult:
        """Adapt a copy of ``source_model`` (never modified) and return it at its chosen checkpoint."""
        config = self.make_config(config)
        self.check_data(data)
        return self.train(source_model, data, config, settings, log)

    @abstractmethod
    def train(self, source_model: nn.Module, data: AdaptationData, config: Any,
              settings: TrainSettings, log: LogFn | None) -> AdaptResult:
        """The method's own training, called by :meth:`fit` after its data was checked."""

    @classmethod
    def make_config(cls, config: MethodConfig | dict | None, where: str | None = None) -> MethodConfig:
        """The typed config; a bad value is a ConfigError naming the hyperparameter, as
        ``{where}.{key}`` when ``where`` says where it was written (e.g. ``adapt.methods.dann``)."""
        if config is None:
            return cls.Config()
        if isinstance(config, cls.Config):
            return config
        raw = config.model_dump() if isinstance(config, BaseModel) else dict(config)
        try:
            return cls.Config(**raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            if where:
                raise ConfigError(f"{where}.{key}: {err['msg']}") from None
            raise ConfigError(f"method '{cls.name}' hyperparameter '{key}': {err['msg']}") from None

    @classmethod
    def check_data(cls, data: AdaptationData) -> None:
        """Refuse, with one sentence, to run without the data this method needs."""
        if cls.needs_target_labels and data.n_target_labels == 0:
            raise MethodRequirementError(
                f"method '{cls.name}' needs labelled target samples but there are none "
                "(set data.target_labels_per_class above 0, or choose an unsupervised method)")
        if cls.needs_unlabelled_target and data.n_target_unlabelled == 0:
            raise MethodRequirementError(
                f"method '{cls.name}' needs unlabelled target samples but the target's unlabelled pool is empty")
        if cls.uses_source and len(data.source_train) == 0:
            raise MethodRequirementError(
                f"method '{cls.name}' trains with source data but the source training split is empty")
        for dom in (data.target_labelled, data.target_unlabelled):
            if dom is not None and len(dom) and tuple(dom.classes) != tuple(data.source_train.classes):
                raise DataError(
                    f"target domain '{dom.name}' has classes {list(dom.classes)} but the source has "
                    f"{list(data.source_train.classes)}: the label spaces must match")
