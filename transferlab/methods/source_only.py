"""``source-only``: the baseline of no adaptation at all."""

from __future__ import annotations

from transferlab.methods.base import AdaptationData, Method, MethodConfig
from transferlab.methods.registry import register
from transferlab.training import AdaptResult, accuracy, copy_model


@register
class SourceOnly(Method):
    """Returns the source model unchanged; its score is the source-validation accuracy."""

    name = "source-only"
    description = "baseline: the source model applied to the target unchanged"
    trains = False
    shared_label_space = True
    Config = MethodConfig

    def train(self, source_model, data: AdaptationData, config, settings, log) -> AdaptResult:
        model = copy_model(source_model).eval()
        if data.source_val is None:
            return AdaptResult(model=model, history=[], best_epoch=0, best_score=float("nan"),
                               checkpoint_criterion="none: the source model unchanged (no source data to score it on)")
        return AdaptResult(model=model, history=[], best_epoch=0, best_score=accuracy(model, data.source_val),
                           checkpoint_criterion="none: the source model unchanged (score = source validation accuracy)")
