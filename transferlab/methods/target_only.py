"""``target-only``: the baseline that ignores the source and learns from the target labels alone."""

from __future__ import annotations

from transferlab.methods.base import AdaptationData, Method, MethodConfig
from transferlab.methods.heads import target_spec
from transferlab.methods.registry import register
from transferlab.methods.target_training import fit_on_labelled_target
from transferlab.models import build_model
from transferlab.training import AdaptResult, param_group


@register
class TargetOnly(Method):
    """A network of the source model's architecture, freshly initialised, trained on target labels."""

    name = "target-only"
    relative_step_cost = 0.41
    description = "baseline: trained from scratch on the labelled target samples only"
    needs_target_labels = True
    Config = MethodConfig
    supports_distributed = True  # cross-entropy: a mean over samples

    def train(self, source_model, data: AdaptationData, config, settings, log) -> AdaptResult:
        spec = target_spec(source_model.spec, data).model_copy(update={"progressive": False})
        model = build_model(spec, seed=settings.seed)
        return fit_on_labelled_target(model, [param_group(model.parameters())], data, settings, log,
                                      description=self.name)
