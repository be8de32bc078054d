"""Scoring a network during training: predictions, accuracy and checkpoint scorers.

A :class:`Scorer` is what chooses the checkpoint. It sees only data a method is allowed to
see (source validation, labelled target, unlabelled target inputs), never the target test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from transferlab.data.loading import batches_in_order
from transferlab.data.types import Domain
from transferlab.models.features import CACHE, CACHED_PREFIX
from transferlab.validators import information_maximization, seeded_subset


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, device: torch.device | str = "cpu",
                   batch_size: int = 512) -> np.ndarray:
    """Logits of ``model`` on ``x`` in eval mode (the model's train/eval mode is restored)."""
    was_training = model.training
    model.eval()
    out = []
    k = getattr(model, CACHED_PREFIX, 0)
    if k:  # a network training above frozen blocks: their features come from the cache
        features = CACHE.prefix(model, k, x, device)
        for start in range(0, len(features), batch_size):
            out.append(model.forward_from(k, features[start:start + batch_size].to(device)).float().cpu().numpy())
    for batch in [] if k else batches_in_order(x, batch_size):
        out.append(model(batch.to(device)).float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def accuracy(model: nn.Module, domain: Domain, device: torch.device | str = "cpu") -> float:
    """Share of ``domain`` that ``model`` classifies correctly."""
    if len(domain) == 0:
        return float("nan")
    return float((predict_logits(model, domain.x, device).argmax(1) == domain.y).mean())


@dataclass(frozen=True)
class Scorer:
    """Scores a model after each epoch; higher is better.

    ``name`` is what :attr:`AdaptResult.checkpoint_criterion` reports. With ``keep='last'``
    the loop keeps the final epoch instead of the best-scoring one (and never stops early):
    used when there is no honest data left to choose a checkpoint with.
    """

    name: str
    score: Callable[[nn.Module, torch.device], float]
    keep: str = "best"


def accuracy_scorer(domain: Domain, name: str) -> Scorer:
    return Scorer(name, lambda model, device: accuracy(model, domain, device))


def information_maximization_scorer(x: np.ndarray, max_samples: int = 2000, seed: int = 0) -> Scorer:
    """Label-free: IM = H(mean prediction) - mean H(prediction) on unlabelled target inputs.

    High when target predictions are individually confident yet spread over the classes
    (see :mod:`transferlab.validators`). A seeded random ``max_samples`` of the inputs are used,
    so the score is deterministic and cheap; not the first ones, since a pool sorted by class
    (an ImageFolder tree) would show only some classes and favour a model that predicts those.

    Why the checkpoint criterion is not the trial ranker's validator (``select.validator``, DEV by
    default), written down for issue 23 rather than unified:

    - It runs after every epoch of every run, so it must be cheap and need nothing but the model
      and target inputs. DEV fits a domain classifier (a path of logistic fits) on source and
      target features at every call and needs labelled source data, which the source-free methods
      (shot, tent) that also keep checkpoints this way do not have; mean-rank and the committee
      need a pool of models, and one run's epochs are not the pool they were measured on.
    - The selection benchmark's validator study (benchmarks/RESULTS.md, ``selection-study-*``)
      measures how validators rank *different methods' finished models*; nothing yet measures how
      they rank *epochs of one run*, so no scorer is "validated" for this use. IM is kept: it is
      what SHOT optimises and what the source-free road already relies on.
    - If a per-model validator wins both suites of that study, the one to unify on is a cheap one
      that needs only this run's model: SRC+IM (:func:`transferlab.probe_validators.source_accuracy_with_im`,
      one source-validation pass more per epoch) or entropy, not DEV.
    """
    x = x[seeded_subset(len(x), max_samples, np.random.default_rng(seed))]
    return Scorer("target-unlabelled information maximisation (label-free)",
                  lambda model, device: information_maximization(predict_logits(model, x, device)))


def last_epoch_scorer(domain: Domain, reason: str) -> Scorer:
    """Keep the last epoch; report accuracy on ``domain`` (training labels) as its score."""
    return Scorer(f"last epoch ({reason}); score = accuracy on the training labels",
                  lambda model, device: accuracy(model, domain, device), keep="last")
