"""``shot``: source hypothesis transfer (Liang, Hu & Feng 2020, "Do we really need to access the
source data?"). Source-free: it needs the source model and unlabelled target data, never source data.

The source classifier head h (the *hypothesis*) is frozen; the feature encoder g (every block)
is trained so that the target features fit h. With δ = softmax(h(g(x))) on a target batch of
N samples and p̄ = (1/N) Σᵢ δᵢ, the loss is

    L = ent_weight · (L_ent + L_div) + β · L_pl
    L_ent = −(1/N) Σᵢ Σ_k δᵢₖ log δᵢₖ          (each prediction confident)
    L_div =  Σ_k p̄_k log p̄_k                   (= −H(p̄): predictions spread over the classes)
    L_pl  = −(1/N) Σᵢ log δᵢ,ŷᵢ                 (cross-entropy to the pseudo-labels ŷ)

(natural logarithms; L_ent + L_div is minus the information maximisation of
:mod:`transferlab.validators`). β = 0 is the paper's SHOT-IM.

Pseudo-labels come from self-supervised clustering of the whole unlabelled pool, refreshed
before the first step and then every ``pseudo_label_interval`` epochs with the current network
in eval mode. In the cosine geometry each feature gets a 1 appended and is L2-normalised
(f̂ = [f, 1] / ‖[f, 1]‖, as in the reference code); then

    c_k⁽⁰⁾ = Σᵢ δᵢₖ f̂ᵢ / Σᵢ δᵢₖ,        ŷᵢ = argmin_k D_cos(f̂ᵢ, c_k)
    c_k⁽ʳ⁾ = Σᵢ 1[ŷᵢ = k] f̂ᵢ / Σᵢ 1[ŷᵢ = k],  ŷ reassigned   (``label_iterations`` times, default 1)

with D_cos(a, b) = 1 − a·b / (‖a‖ ‖b‖); a class that no sample was assigned to has no centroid.

Defaults follow the reference implementation's digit recipe (tim-learn/SHOT, ``digit/uda_digit.py``
and ``digit/digit.sh``): β = 0.1 (``--cls_par 0.1``; the paper's 0.3 is for the object benchmarks),
ent_weight 1 and the diversity term on, labels refreshed once per epoch, one re-clustering round,
cosine distance. The reference trains with SGD (lr 0.01, momentum 0.9) under the annealed
schedule (1 + 10p)^-0.75; here the optimiser is the shared loop's Adam, and
``settings.lr_schedule='annealed'`` gives the same schedule.

Checkpoint: label-free by default (``checkpoint='auto'``: accuracy on the labelled target samples
when there are some, which SHOT never trains on, else information maximisation on the unlabelled
pool; :mod:`transferlab.methods.checkpointing`). ``'last-epoch'`` is the paper's protocol: the
network after the last epoch is kept and there is no early stopping.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from transferlab.data.types import Domain
from transferlab.methods.base import AdaptationData, Method, MethodConfig
from transferlab.methods.checkpointing import unsupervised_checkpoint
from transferlab.methods.heads import student_from
from transferlab.methods.registry import register
from transferlab.training import (
    AdaptResult,
    BatchStream,
    Scorer,
    TrainingStep,
    freeze,
    information_maximization_scorer,
    param_group,
    run_training,
    seed_everything,
    steps_per_epoch,
)
from transferlab.validators import softmax

Checkpoint = Literal["auto", "target-labelled", "information-maximisation", "last-epoch"]


class SourceFreeConfig(MethodConfig):
    """Hyperparameters shared by the source-free methods (``shot``, ``tent``)."""

    checkpoint: Checkpoint = Field(
        "auto",
        description="what chooses the checkpoint; 'auto': accuracy on the labelled target samples when there "
                    "are some (never trained on), else information maximisation on the unlabelled target "
                    "(label-free); 'last-epoch': keep the final epoch, no early stopping (the papers' protocol)",
    )


def source_free_checkpoint(data: AdaptationData, choice: str) -> Scorer:
    """The scorer a source-free method keeps its checkpoint with (never source data: there may be none)."""
    if choice == "last-epoch":
        im = information_maximization_scorer(data.target_unlabelled.x)
        return Scorer(f"last epoch (the paper's protocol); score = {im.name}", im.score, keep="last")
    return unsupervised_checkpoint(data, choice)


def entropy_loss(logits: torch.Tensor) -> torch.Tensor:
    """L_ent = mean over the batch of H(softmax(z)), in nats."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(1).mean()


def diversity_loss(logits: torch.Tensor) -> torch.Tensor:
    """L_div = Σ_k p̄_k log p̄_k = −H(p̄), p̄ the batch-mean prediction (lowest when p̄ is uniform)."""
    p_mean = F.softmax(logits, dim=1).mean(0)
    # The clamp only guards log(0) for a class the whole batch rules out (p̄_k log p̄_k -> 0 there).
    return (p_mean * torch.log(p_mean.clamp_min(1e-12))).sum()


def information_maximisation_loss(logits: torch.Tensor, diversity: bool = True) -> torch.Tensor:
    """L_ent + L_div (just L_ent without the diversity term): minus the information maximisation."""
    loss = entropy_loss(logits)
    return (loss + diversity_loss(logits)) if diversity else loss


def _nearest_centroid(features: np.ndarray, weights: np.ndarray, distance: str) -> np.ndarray:
    """Labels of the nearest weighted centroid c_k = Σᵢ wᵢₖ fᵢ / Σᵢ wᵢₖ (classes of zero weight skipped)."""
    mass = weights.sum(0)
    centroids = weights.T @ features / np.maximum(mass, 1e-12)[:, None]
    if distance == "cosine":
        unit = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        norms = np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
        dist = 1.0 - (features / norms) @ unit.T
    else:  # squared euclidean, expanded: an N×K×d difference tensor would not fit for a large pool
        dist = (features ** 2).sum(1)[:, None] - 2.0 * features @ centroids.T + (centroids ** 2).sum(1)[None]
    dist[:, mass <= 0] = np.inf
    return dist.argmin(1)


def shot_pseudo_labels(features: object, logits: object, distance: Literal["cosine", "euclidean"] = "cosine",
                       iterations: int = 1) -> np.ndarray:
    """SHOT's self-supervised pseudo-labels of a target pool (see the module docstring).

    Centroids weighted by the soft predictions first, then ``iterations`` rounds of centroids
    from the hard labels and reassignment. Returns int64 labels, one per sample.
    """
    f = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features, dtype=np.float64)
    p = softmax(logits)
    if distance == "cosine":
        # The appended constant keeps the norm of the feature in play after normalisation, as the reference does.
        f = np.concatenate([f, np.ones((len(f), 1))], axis=1)
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
    labels = _nearest_centroid(f, p, distance)
    eye = np.eye(p.shape[1])
    for _ in range(iterations):
        labels = _nearest_centroid(f, eye[labels], distance)
    return labels.astype(np.int64)


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside the block, every submodule's own mode restored after it
    (a plain ``model.train()`` would wake frozen blocks the loop keeps in eval mode)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


@torch.no_grad()
def pool_outputs(model: nn.Module, x: np.ndarray, device: torch.device,
                 batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(features, logits) of ``model`` in eval mode on every input of ``x``."""
    feats, logits = [], []
    with evaluating(model):
        for start in range(0, len(x), batch_size):
            f = model.features(torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size])).to(device))
            feats.append(f.float().cpu().numpy())
            logits.append(model.head(f).float().cpu().numpy())
    return np.concatenate(feats), np.concatenate(logits)


Relabel = Callable[[torch.device], tuple[np.ndarray, float]]


class PseudoLabelStream:
    """Target batches ``(x, pseudo_label)`` (just ``(x,)`` without ``relabel``).

    ``relabel(device)`` returns (labels for the whole pool, their agreement with the network's
    own predictions); it is called before the first batch and then every ``interval_steps``
    batches. The labels live here, in :meth:`state`, so that a run paused between two refreshes
    continues with the labels it had. The pool's true labels are dropped unseen.
    """

    def __init__(self, domain: Domain, batch_size: int, seed: int, name: str,
                 relabel: Relabel | None, interval_steps: int):
        self._batches = BatchStream(domain, batch_size, seed, name, with_index=True)
        self._relabel = relabel
        self._interval = interval_steps
        self._drawn = 0
        self._labels: np.ndarray | None = None
        self._on_device: torch.Tensor | None = None
        self.agreement = float("nan")

    def __len__(self) -> int:
        return len(self._batches)

    def state(self) -> dict:
        return {"batches": self._batches.state(), "drawn": self._drawn, "agreement": self.agreement,
                "labels": None if self._labels is None else self._labels.copy()}

    def restore(self, state: dict) -> None:
        self._batches.restore(state["batches"])
        self._drawn, self.agreement = state["drawn"], state["agreement"]
        self._labels = None if state["labels"] is None else state["labels"].copy()
        self._on_device = None

    def next(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        if self._relabel is not None and self._drawn % self._interval == 0:
            self._labels, self.agreement = self._relabel(device)
            self._on_device = None
        self._drawn += 1
        x, _, idx = self._batches.next(device)
        if self._labels is None:
            return (x,)
        if self._on_device is None or self._on_device.device != x.device:
            self._on_device = torch.from_numpy(self._labels).to(x.device)
        return x, self._on_device[idx]


class ShotConfig(SourceFreeConfig):
    beta: float = Field(0.1, ge=0, description="weight β of the pseudo-label cross-entropy (0: SHOT-IM); "
                                               "0.1 is the reference code's digit setting")
    ent_weight: float = Field(1.0, ge=0, description="weight of the information-maximisation loss L_ent + L_div")
    diversity: bool = Field(True, description="include the diversity term L_div (off: entropy minimisation only)")
    pseudo_label_interval: int = Field(1, ge=1, description="refresh the pseudo-labels every this many epochs")
    label_iterations: int = Field(1, ge=0, description="rounds of hard-label centroids and reassignment")
    distance: Literal["cosine", "euclidean"] = Field("cosine", description="feature geometry of the clustering")


@register
class Shot(Method):
    name = "shot"
    relative_step_cost = 0.38
    description = ("source-free: trains the encoder under the frozen source head with information maximisation "
                   "and self-supervised clustering pseudo-labels (no source data needed)")
    uses_unlabelled_target = True
    needs_unlabelled_target = True
    uses_source = False
    shared_label_space = True
    Config = ShotConfig

    def train(self, source_model, data: AdaptationData, config: ShotConfig, settings, log) -> AdaptResult:
        seed_everything(settings.seed)
        model = student_from(source_model, new_head=False, seed=settings.seed)
        freeze(model.head)  # the source hypothesis stays fixed: the target features must fit it
        pool = data.target_unlabelled
        n = steps_per_epoch([len(pool)], settings.batch_size, settings.min_steps_per_epoch,
                            settings.max_steps_per_epoch)

        def relabel(device: torch.device) -> tuple[np.ndarray, float]:
            feats, logits = pool_outputs(model, pool.x, device)
            labels = shot_pseudo_labels(feats, logits, config.distance, config.label_iterations)
            return labels, float((labels == logits.argmax(1)).mean())

        target = PseudoLabelStream(pool, settings.batch_size, settings.seed, "target-unlabelled",
                                   relabel if config.beta > 0 else None, config.pseudo_label_interval * n)

        def step(s: TrainingStep) -> dict[str, torch.Tensor]:
            x, *pseudo = s.batches["target"]
            logits = model(x)
            ent = entropy_loss(logits)
            div = diversity_loss(logits) if config.diversity else logits.new_zeros(())
            out = {"entropy": ent, "diversity": div}
            loss = config.ent_weight * (ent + div)
            if pseudo:
                out["pseudo_label_ce"] = ce = F.cross_entropy(logits, pseudo[0])
                out["pseudo_label_agreement"] = logits.new_tensor(target.agreement)
                loss = loss + config.beta * ce
            return {"loss": loss, **out}

        return run_training(model, [param_group(model.parameters())], step, {"target": target},
                            source_free_checkpoint(data, config.checkpoint), settings, n, log,
                            description=self.name)
