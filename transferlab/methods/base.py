"""What a transfer method is: the data it may see, its typed hyperparameters, its ``fit``.

A method never sees the target test split: :class:`AdaptationData` has no field for it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from transferlab.data.adaptation import AdaptationData
from transferlab.data.labels import TASK_TRANSFER
from transferlab.errors import ConfigError, MethodRequirementError
from transferlab.training import AdaptResult, TrainSettings, distributed
from transferlab.training.loop import LogFn

__all__ = ["AdaptResult", "AdaptationData", "Method", "MethodConfig", "UnsupervisedConfig"]


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
    during adaptation (not only the source model). ``shared_label_space``: the source head's
    classes must be the target's (domain adaptation); such a method is ineligible for a new task.
    ``new_task_only``: the reverse, a method meant for a target of new classes.
    ``needs_several_sources``: trains on the other candidate sources too (``data.other_sources``).
    ``relative_step_cost``: a training step's time against dann's (see benchmarks/method_step_time.py).
    ``composite``: trains other methods and combines them (the ensemble); never a candidate of its own,
    so :func:`~transferlab.methods.registry.applicable_methods` leaves it out.
    ``supports_distributed``: trains across processes (``distributed.processes`` > 1, see
    :mod:`transferlab.training.distributed`) with the same result as one process: every loss term is
    a mean of per-sample terms, so sharding the batch and averaging the gradients changes nothing.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    needs_target_labels: ClassVar[bool] = False
    uses_unlabelled_target: ClassVar[bool] = False
    needs_unlabelled_target: ClassVar[bool] = False
    uses_source: ClassVar[bool] = False
    shared_label_space: ClassVar[bool] = False
    new_task_only: ClassVar[bool] = False
    needs_several_sources: ClassVar[bool] = False
    trains: ClassVar[bool] = True  # False: returns the source model as it is (costs no training)
    composite: ClassVar[bool] = False
    supports_distributed: ClassVar[bool] = False
    # Seconds per training step relative to dann's at the same batch, as benchmarks/method_step_time.py
    # measured them (LeNet, 2 threads): the prior that submits trial mode's first round longest-first.
    relative_step_cost: ClassVar[float] = 1.0
    Config: ClassVar[type[MethodConfig]] = MethodConfig

    def fit(self, source_model: nn.Module, data: AdaptationData, config: MethodConfig | dict | None,
            settings: TrainSettings, log: LogFn | None = None) -> AdaptResult:
        """Adapt a copy of ``source_model`` (never modified) and return it at its chosen checkpoint."""
        config = self.make_config(config)
        self.check_data(data)
        self.check_model(source_model)
        if distributed.active() and (problem := self.distributed_problem(config)):
            raise MethodRequirementError(problem)
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
        if cls.uses_source and not data.has_source_data:
            raise MethodRequirementError(
                f"method '{cls.name}' trains with source data, but there is none (only a source model)")
        if cls.needs_several_sources and not data.other_sources:
            raise MethodRequirementError(
                f"method '{cls.name}' trains on several candidate sources (data.sources), but this run has one")
        if cls.shared_label_space and data.road == TASK_TRANSFER:
            raise MethodRequirementError(
                f"method '{cls.name}' needs the target to have the source's classes (domain adaptation), "
                f"but this target is a new task: {data.label_spaces.sentence()}")
        if cls.new_task_only and data.road != TASK_TRANSFER:
            raise MethodRequirementError(
                f"method '{cls.name}' learns new classes from a few labels, but the target has the source's "
                "classes (domain adaptation)")

    @classmethod
    def distributed_problem(cls, config: MethodConfig | dict | None = None) -> str | None:
        """Why this method (with ``config``) cannot train across processes, in one sentence; None if it can."""
        if cls.supports_distributed or not cls.trains:
            return None
        from transferlab.methods.registry import list_methods

        able = ", ".join(m.name for m in list_methods() if m.supports_distributed or not m.trains)
        return (f"method '{cls.name}' does not train across processes (distributed.processes > 1): its losses "
                f"are not means of per-sample terms; methods that do: {able}")

    @classmethod
    def check_model(cls, model: nn.Module) -> None:
        """Refuse, with one sentence, a source model this method cannot work with (default: any will do)."""


class UnsupervisedMethod(Method):
    """A domain-adaptation method that trains on labelled source data and unlabelled target inputs
    in one label space (dann, cdan, dan, deep-coral, mcc, instance-weighting)."""

    uses_unlabelled_target = True
    needs_unlabelled_target = True
    uses_source = True
    shared_label_space = True
    Config = UnsupervisedConfig
