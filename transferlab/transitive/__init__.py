"""Transitive transfer: adapt in hops through intermediate domains (gradual domain adaptation).

- :mod:`.self_training`: one hop of gradual self-training (Kumar et al. 2020): confident
  pseudo-labels from the previous hop's model, cross-entropy to them on the next domain.
- :mod:`.hops`: the chain itself, source → intermediate(s) → target, each hop starting from the
  model of the one before.

Whether to take a chain, and which one, is selection's business: :mod:`transferlab.selection.transitive`.
"""

from transferlab.transitive.hops import HopResult, adapt_in_hops
from transferlab.transitive.self_training import (
                                                  SelfTrainingConfig,
                                                  confident_pseudo_labels,
                                                  self_train,
                                                  self_training_loss,
)

__all__ = ["HopResult", "SelfTrainingConfig", "adapt_in_hops", "confident_pseudo_labels", "self_train",
           "self_training_loss"]
