"""``dann``: domain-adversarial neural network (Ganin & Lempitsky 2015).

A domain discriminator D on the features learns to tell source from target; a gradient-reversal
layer between features and D makes the feature extractor maximise D's loss at the same time:

    L = CE_s + trade_off * BCE(D(GRL_λ(f)), domain),     λ(p) = 2 / (1 + exp(-10 p)) - 1

(see :mod:`transferlab.methods.adversarial`). At the saddle point the features carry the class
information but not the domain, so the source classifier applies to the target. ``bnm`` and
``bsp`` add the spectral regularisers of :mod:`transferlab.methods.spectral`.
"""

from __future__ import annotations

from pydantic import Field

from transferlab.methods.adversarial import DomainDiscriminator, domain_loss, grad_reverse, warmup_coefficient
from transferlab.methods.alignment import AlignmentInputs, fit_with_alignment
from transferlab.methods.base import AdaptationData, UnsupervisedMethod
from transferlab.methods.registry import register
from transferlab.methods.spectral import AdversarialConfig, spectral_terms
from transferlab.training import AdaptResult


class DannConfig(AdversarialConfig):
    discriminator_hidden: int = Field(500, ge=8, description="width of the discriminator's hidden layers")
    gamma: float = Field(10.0, gt=0, description="steepness of the GRL warm-up λ(p) = 2/(1+exp(-γp)) - 1")


@register
class Dann(UnsupervisedMethod):
    name = "dann"
    description = "domain-adversarial training: a gradient-reversal layer makes features domain-invariant"
    Config = DannConfig
    supports_distributed = True  # CE and the domain loss are means over samples; BNM/BSP are not

    @classmethod
    def distributed_problem(cls, config=None):
        config = cls.make_config(config)
        if config.bnm > 0 or config.bsp > 0:
            return ("method 'dann' with bnm or bsp does not train across processes (distributed.processes > 1): "
                    "those terms are statistics of the whole batch; set adapt.methods.dann.bnm and .bsp to 0")
        return None

    def train(self, source_model, data: AdaptationData, config: DannConfig, settings, log) -> AdaptResult:
        disc = DomainDiscriminator(source_model.feature_dim, config.discriminator_hidden, settings.seed + 1)

        def align(a: AlignmentInputs):
            coeff = warmup_coefficient(a.step.progress, config.gamma)
            loss, acc = domain_loss(disc(grad_reverse(a.features_s, coeff)), disc(grad_reverse(a.features_t, coeff)))
            return {"align": loss, "domain_accuracy": acc, "grl_coefficient": loss.new_tensor(coeff),
                    **spectral_terms(config, a.features_s, a.features_t, a.logits_t)}

        return fit_with_alignment(source_model, data, config, settings, log, self.name, align, aux_modules=[disc])
