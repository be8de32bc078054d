"""``ensemble``: several methods trained from the same source model, their predictions averaged.

The EnsV candidate (Hu et al. 2024; :mod:`transferlab.ensemble`): with members f₁..f_M, each
adapted by its own method and hyperparameters from the same source model and data,

    p(y | x) = (1/M) Σₘ softmax(fₘ(x))_y

Trial-mode selection chooses it when its committee of label-free validators disagrees about the
best finalist (``select.ensemble``); ``select.force_method: ensemble`` with
``adapt.methods.ensemble.members`` trains one by hand. Each member keeps the checkpoint its own
method chooses; the ensemble adds no training of its own, so it costs the sum of its members.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from transferlab.ensemble import EnsembleClassifier
from transferlab.errors import ConfigError
from transferlab.methods.base import AdaptationData, Method, MethodConfig
from transferlab.methods.registry import get_method, register
from transferlab.training import AdaptResult
from transferlab.training.loop import LogFn


class Member(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str
    settings: dict[str, Any] = Field(default_factory=dict, description="the member method's hyperparameters")


class EnsembleConfig(MethodConfig):
    members: list[Member] = Field(min_length=2, description="the methods averaged, each with its hyperparameters")

    @field_validator("members")
    @classmethod
    def _members_exist(cls, members: list[Member]) -> list[Member]:
        for i, member in enumerate(members, start=1):
            try:
                method = get_method(member.method)
                method.make_config(member.settings, where=f"member {i} ({member.method})")
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
            if method.composite:
                raise ValueError(f"member {i} is itself an ensemble; list its members instead")
        return members


def _prefixed(log: LogFn | None, prefix: str) -> LogFn | None:
    if log is None:
        return None
    return lambda epoch, metrics: log(epoch, {f"{prefix}{k}": v for k, v in metrics.items()})


def _merged_history(histories: list[list[dict]], prefixes: list[str]) -> list[dict]:
    """One record per epoch with every member's numbers under its prefix (members may stop at
    different epochs: a record holds the members that reached it)."""
    by_epoch: dict[int, dict] = {}
    for history, prefix in zip(histories, prefixes):
        for record in history:
            row = by_epoch.setdefault(int(record.get("epoch", 0)), {"epoch": int(record.get("epoch", 0))})
            row.update({f"{prefix}{k}": v for k, v in record.items() if k != "epoch"})
    return [by_epoch[e] for e in sorted(by_epoch)]


@register
class Ensemble(Method):
    name = "ensemble"
    description = ("mean of the predicted probabilities of several methods' models (EnsV); chosen in trial mode "
                   "when the label-free validators disagree")
    composite = True
    Config = EnsembleConfig

    @classmethod
    def distributed_problem(cls, config: EnsembleConfig | dict | None = None) -> str | None:
        """Trains across processes when every member does (each member's fit shards its own batches)."""
        if config is None:
            return None
        members = cls.make_config(config).members
        return next((f"ensemble member '{m.method}': {problem}" for m in members
                     if (problem := get_method(m.method).distributed_problem(m.settings))), None)

    def train(self, source_model, data: AdaptationData, config: EnsembleConfig, settings,
              log: LogFn | None) -> AdaptResult:
        prefixes = [f"{i}.{m.method}." for i, m in enumerate(config.members, start=1)]
        results = [get_method(m.method)().fit(source_model, data, m.settings, settings, log=_prefixed(log, prefix))
                   for m, prefix in zip(config.members, prefixes)]
        criteria = "; ".join(f"{m.method}: {r.checkpoint_criterion} (epoch {r.best_epoch})"
                             for m, r in zip(config.members, results))
        return AdaptResult(model=EnsembleClassifier([r.model for r in results]).eval(),
                           history=_merged_history([r.history for r in results], prefixes),
                           checkpoint_criterion=f"each member its own: {criteria}",
                           best_epoch=max(r.best_epoch for r in results), best_score=float("nan"))
