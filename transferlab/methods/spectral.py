"""Spectral regularisers for the adversarial methods (options of ``dann`` and ``cdan``).

- BNM, batch nuclear-norm maximisation (Cui et al. 2020, "Towards Discriminability and Diversity"):
  with A the B × K softmax predictions of the target batch,

      L_bnm = −‖A‖_* / B

  (‖·‖_* the nuclear norm, the sum of singular values). Maximising it makes each prediction
  confident (discriminability) and the batch use many classes (diversity), where entropy
  minimisation alone would collapse onto the majority classes.
- BSP, batch spectral penalization (Chen et al. 2019, "Transferability vs. Discriminability"):
  with F_s, F_t the source and target feature matrices of the batch and σ_i their singular values
  in decreasing order,

      L_bsp = Σ_{i ≤ k} σ_{s,i}² + σ_{t,i}²      (paper: k = 1, weight 1e-4)

  Adversarial alignment transfers the few largest singular directions; penalising them lets the
  others, which carry the class structure, speak.
"""

from __future__ import annotations

import torch
from pydantic import Field

from transferlab.methods.base import UnsupervisedConfig


def bnm_loss(logits_t: torch.Tensor) -> torch.Tensor:
    """−‖softmax(Z_t)‖_* / B."""
    return -torch.linalg.matrix_norm(logits_t.softmax(1), ord="nuc") / logits_t.shape[0]


def bsp_loss(features_s: torch.Tensor, features_t: torch.Tensor, k: int) -> torch.Tensor:
    """Σ of the k largest squared singular values of each domain's batch features."""
    return sum((torch.linalg.svdvals(f)[:k] ** 2).sum() for f in (features_s, features_t))


class AdversarialConfig(UnsupervisedConfig):
    """What dann and cdan share: the two spectral regularisers, off by default."""

    bnm: float = Field(0.0, ge=0, description="weight of batch nuclear-norm maximisation on target "
                                              "predictions (Cui et al. 2020: 1.0 next to an adversarial loss)")
    bsp: float = Field(0.0, ge=0, description="weight of batch spectral penalization of the features "
                                              "(Chen et al. 2019: 1e-4)")
    bsp_k: int = Field(1, ge=1, description="how many of the largest singular values BSP penalises")


def spectral_terms(config: AdversarialConfig, features_s: torch.Tensor, features_t: torch.Tensor,
                   logits_t: torch.Tensor) -> dict[str, torch.Tensor]:
    """The enabled regularisers, logged under their names and summed (weighted) in ``regulariser``."""
    terms: dict[str, torch.Tensor] = {}
    if config.bnm > 0:
        terms["bnm"] = bnm_loss(logits_t)
    if config.bsp > 0:
        terms["bsp"] = bsp_loss(features_s, features_t, config.bsp_k)
    if terms:
        terms["regulariser"] = config.bnm * terms.get("bnm", 0) + config.bsp * terms.get("bsp", 0)
    return terms
