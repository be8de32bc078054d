r"""The chain of hops: source → intermediate₁ → … → intermediate_k → target.

Gradual domain adaptation (Kumar et al. 2020) replaces one adaptation across a large shift by a
sequence of small ones: with θ₀ the source model and D₁ … D_k, D_{k+1} = target the domains in
order,

    θ_t = A(θ_{t-1}, D_t),   t = 1 … k+1,

where A is one unsupervised adaptation step (gradual self-training, :mod:`.self_training`, or any
label-free method of :mod:`transferlab.methods`, e.g. DANN with the labelled source and D_t's
unlabelled inputs). Each hop starts from the model the previous hop returned; the model of the
last hop is the adapted model. The hop function decides how a hop trains; this module only keeps
the order and hands each model on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from transferlab.training import AdaptResult

# (model the hop starts from, 0-based hop index, name of the domain it adapts to) -> its result
HopFn = Callable[[nn.Module, int, str], AdaptResult]


@dataclass
class HopResult:
    index: int          # 0-based
    domain: str         # the domain this hop adapted to
    result: AdaptResult


def adapt_in_hops(source_model: nn.Module, domains: list[str], hop: HopFn,
                  on_hop: Callable[[HopResult], None] | None = None) -> list[HopResult]:
    """Run ``hop`` once per domain in ``domains`` (intermediates in order, the target last), each
    from the previous hop's model; ``on_hop`` sees every hop as it finishes (to record it)."""
    if not domains:
        raise ValueError("a chain needs at least one domain to adapt to")
    done: list[HopResult] = []
    model = source_model
    for index, name in enumerate(domains):
        hop_result = HopResult(index, name, hop(model, index, name))
        done.append(hop_result)
        if on_hop is not None:
            on_hop(hop_result)
        model = hop_result.result.model
    return done
