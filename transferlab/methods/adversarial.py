"""Pieces of domain-adversarial training: the gradient-reversal layer, its warm-up, a discriminator.

Gradient reversal (Ganin & Lempitsky 2015): identity in the forward pass, gradient multiplied
by ``-λ`` in the backward pass, so one backward pass trains the discriminator D to tell the
domains apart while pushing the feature extractor to make them indistinguishable:

    min_{F,C} max_D  E_s[CE(C(F(x)), y)] - trade_off * E_{s,t}[BCE(D(F(x)), d)]

The coefficient warms up from 0 to 1 over training, ``λ(p) = 2 / (1 + exp(-γ p)) - 1`` with
γ = 10 and p the training progress in [0, 1], so early noisy discriminator gradients do not
wreck the features before the classifier has learnt anything.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coeff * grad, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Identity forward; multiplies the gradient by ``-coeff`` backward."""
    return _ReverseGrad.apply(x, float(coeff))


class GradientReversal(nn.Module):
    """Module form of :func:`grad_reverse` with a settable coefficient."""

    def __init__(self, coeff: float = 1.0):
        super().__init__()
        self.coeff = coeff

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.coeff)


def warmup_coefficient(progress: float, gamma: float = 10.0) -> float:
    """λ(p) = 2 / (1 + exp(-γ p)) - 1: 0 at the start, → 1 at the end of training."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


class DomainDiscriminator(nn.Module):
    """MLP ``in_dim -> hidden -> hidden -> 1`` (logit of "this sample is from the target")."""

    def __init__(self, in_dim: int, hidden: int, seed: int):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = nn.Sequential(
                nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(0.5),
                nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(0.5),
                nn.Linear(hidden, 1),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def domain_loss(logit_s: torch.Tensor, logit_t: torch.Tensor,
                w_s: torch.Tensor | None = None, w_t: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary cross-entropy (source = 0, target = 1), optionally per-sample weighted; and the accuracy."""
    bce = nn.functional.binary_cross_entropy_with_logits
    ls = bce(logit_s, torch.zeros_like(logit_s), weight=w_s)
    lt = bce(logit_t, torch.ones_like(logit_t), weight=w_t)
    acc = 0.5 * ((logit_s < 0).float().mean() + (logit_t > 0).float().mean())
    return 0.5 * (ls + lt), acc.detach()
