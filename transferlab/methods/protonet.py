"""``protonet``: prototypical networks (Snell, Swersky & Zemel 2017) for a few labels of new classes.

Meta-training learns an embedding f (the source network's ``features``) on *episodes* drawn
from the source classes that are not target classes: N classes, K support and Q query samples
of each. An episode's prototype of class k is the mean support embedding

    c_k = 1/K Σ_{x ∈ S_k} f(x),

a query is classified by a softmax over negative squared Euclidean distances

    p(y = k | q) = exp(−‖f(q) − c_k‖²) / Σ_k' exp(−‖f(q) − c_k'‖²),

and the loss is the mean over the episode's N·Q queries of −log p(y = true class | q)
(the paper's Algorithm 1). The checkpoint is the epoch with the best query accuracy on a fixed
set of validation episodes from the source validation split (meta-training classes only).

The target classifier is nearest-prototype over the target's labelled samples, written exactly
as a linear head (the paper's section 2.4):

    −‖f − c_k‖² = 2 c_kᵀ f − ‖c_k‖² − ‖f‖²,   so  W_k = 2 c_k,  b_k = −‖c_k‖²;

‖f‖² is the same for every class, so softmax and argmax are unchanged. The result is a
standard classifier (the source network's blocks, that head), which ``finetune: true`` then
trains further on the target labels, starting from the prototype head as Triantafillou et al.
(2020, Proto-MAML) initialise their output layer.

On the domain-adaptation road every source class is a target class: there is nothing left to
meta-train on, so the method is for new tasks only.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from transferlab.data.types import Domain
from transferlab.errors import MethodRequirementError
from transferlab.methods.base import AdaptationData, Method, MethodConfig
from transferlab.methods.checkpointing import labelled_target_checkpoint
from transferlab.methods.heads import backbone_parameters, student_from, target_spec
from transferlab.methods.registry import register
from transferlab.methods.target_training import fit_on_labelled_target
from transferlab.training import (
    AdaptResult,
    Scorer,
    TrainingStep,
    TrainSettings,
    freeze,
    param_group,
    run_training,
    seed_everything,
    steps_per_epoch,
)
from transferlab.training.continuation import Continuation, continuing
from transferlab.training.loop import LogFn

__all__ = ["EpisodeShape", "EpisodeStream", "ProtonetConfig", "Protonet", "episode_shape", "meta_training_classes",
           "prototype_head", "prototypes", "prototypical_loss", "squared_distances"]


class ProtonetConfig(MethodConfig):
    n_way: int = Field(5, ge=2, description="classes per episode (capped at the meta-training classes); 5 is the "
                                            "evaluation way of Snell et al. 2017 and Chen et al. 2019")
    n_shot: int | None = Field(None, ge=1, description="support samples per class and episode; None: the target's "
                                                       "labels per class (Snell et al. 2017 found matching the "
                                                       "training shot to the test shot best)")
    n_query: int = Field(15, ge=1, description="query samples per class and episode (capped by what every class "
                                               "has); 15 as in Snell et al. 2017 on miniImageNet")
    episodes_per_epoch: int | None = Field(None, ge=1, description="episodes between checkpoints; None: one pass "
                                                                    "over the meta-training samples, within the "
                                                                    "settings' min/max steps per epoch")
    val_episodes: int = Field(600, ge=1, description="fixed validation episodes the checkpoint is chosen on; 600 as "
                                                     "in the evaluation protocol of Chen et al. 2019")
    finetune: bool = Field(False, description="after meta-training, train the prototype-headed classifier on the "
                                              "target labels (Snell et al. 2017 classify with the prototypes as "
                                              "they are)")
    finetune_backbone: bool = Field(False, description="with finetune: train the whole network, not only the head "
                                                       "(Chen et al. 2019's baseline fixes the feature extractor "
                                                       "and trains the classifier on the few labels)")


# --------------------------------------------------------------------------- the paper's formulas

def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """c_k = mean of the embeddings labelled k, shape (n_classes, D); every class must occur."""
    onehot = F.one_hot(labels, n_classes).to(embeddings.dtype)
    return (onehot.T @ embeddings) / onehot.sum(0).unsqueeze(1)


def squared_distances(f: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """‖f_i − c_k‖², shape (len(f), len(c)). Explicit differences rather than the expanded
    ‖f‖² − 2fᵀc + ‖c‖², which cancels catastrophically when f is close to c."""
    return (f.unsqueeze(1) - c.unsqueeze(0)).pow(2).sum(-1)


def prototypical_loss(support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor, query_y: torch.Tensor,
                      n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean query cross-entropy of softmax(−‖f(q) − c_k‖²), query accuracy) for one episode."""
    logits = -squared_distances(query, prototypes(support, support_y, n_classes))
    loss = F.cross_entropy(logits, query_y)
    return loss, (logits.argmax(1) == query_y).float().mean()


def prototype_head(c: torch.Tensor) -> nn.Linear:
    """The linear layer whose logits are −‖f − c_k‖² + ‖f‖²: W_k = 2 c_k, b_k = −‖c_k‖²."""
    head = nn.Linear(c.shape[1], c.shape[0])
    with torch.no_grad():
        head.weight.copy_(2 * c)
        head.bias.copy_(-c.pow(2).sum(1))
    return head


# --------------------------------------------------------------------------- episodes

def meta_training_classes(data: AdaptationData) -> tuple[str, ...]:
    """The source classes that are not target classes (by name), in the source's order."""
    target = set(data.target_classes)
    return tuple(c for c in data.source_classes if c not in target)


@dataclass(frozen=True)
class EpisodeShape:
    """Which classes episodes draw from and how many of each: N-way, K-shot, Q queries per class."""

    classes: tuple[str, ...]  # every one has at least n_shot + n_query samples
    n_way: int
    n_shot: int
    n_query: int


def episode_shape(domain: Domain | None, classes: Sequence[str], n_way: int, n_shot: int,
                  n_query: int) -> EpisodeShape | None:
    """The episodes ``domain`` can give: the ``classes`` with at least one query beyond ``n_shot``,
    ``n_way`` capped at their number, ``n_query`` at what the smallest of them has; None when
    fewer than 2 classes qualify."""
    if domain is None or len(domain) == 0:
        return None
    counts = dict(zip(domain.classes, domain.class_counts().tolist()))
    eligible = tuple(c for c in classes if counts.get(c, 0) >= n_shot + 1)
    if len(eligible) < 2:
        return None
    # One Q for every class keeps each episode one (N·Q)-sized batch of queries.
    n_query = min(n_query, min(counts[c] for c in eligible) - n_shot)
    return EpisodeShape(eligible, min(n_way, len(eligible)), n_shot, n_query)


class EpisodeStream:
    """An endless, seeded stream of N-way K-shot Q-query episodes from ``domain``.

    Each episode draws N distinct classes of ``shape.classes``, then K + Q distinct samples of
    each, from a numpy generator seeded by ``(seed, name)``; its whole random state is that
    generator's, so :meth:`state` / :meth:`restore` continue the same sequence (the loop's
    pause-and-continue). ``next`` gives ``(support_x, support_y, query_x, query_y, classes)``:
    labels are episode-local (0..N-1, class-major), ``classes`` the chosen domain label indices.
    """

    def __init__(self, domain: Domain, shape: EpisodeShape, seed: int, name: str = "episodes"):
        index = {c: i for i, c in enumerate(domain.classes)}
        self.domain, self.shape = domain, shape
        self.class_ids = np.array([index[c] for c in shape.classes], dtype=np.int64)
        self._members = [np.flatnonzero(domain.y == c) for c in self.class_ids]
        if min(len(m) for m in self._members) < shape.n_shot + shape.n_query:
            raise ValueError("an episode class has fewer samples than n_shot + n_query")
        # a lazy domain's rows are read per episode, not held whole
        self._x = domain.x if domain.is_lazy else torch.from_numpy(np.ascontiguousarray(domain.x))
        self._rng = np.random.default_rng([seed, zlib.crc32(name.encode())])

    def __len__(self) -> int:
        """Episodes in one pass over the episode classes' samples."""
        per_episode = self.shape.n_way * (self.shape.n_shot + self.shape.n_query)
        return max(1, sum(len(m) for m in self._members) // per_episode)

    def state(self) -> dict:
        return {"rng": self._rng.bit_generator.state}

    def restore(self, state: dict) -> None:
        self._rng.bit_generator.state = state["rng"]

    def sample_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(domain label indices (N,), sample indices (N, K + Q): support first, then queries)."""
        s = self.shape
        chosen = self._rng.choice(len(self.class_ids), size=s.n_way, replace=False)
        idx = np.stack([self._rng.choice(self._members[c], size=s.n_shot + s.n_query, replace=False)
                        for c in chosen])
        return self.class_ids[chosen], idx

    def next(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        classes, idx = self.sample_indices()
        return episode_tensors(self._x, idx, self.shape.n_shot, classes, device)


def episode_tensors(x: torch.Tensor, idx: np.ndarray, n_shot: int, classes: np.ndarray,
                    device: torch.device | str) -> tuple[torch.Tensor, ...]:
    """Row i of ``idx`` is class i's K support then Q query indices into ``x`` (or into its embeddings)."""
    n_way, n_query = idx.shape[0], idx.shape[1] - n_shot
    support = torch.from_numpy(idx[:, :n_shot].reshape(-1))
    query = torch.from_numpy(idx[:, n_shot:].reshape(-1))
    support_y = torch.arange(n_way).repeat_interleave(n_shot)
    query_y = torch.arange(n_way).repeat_interleave(n_query)
    def rows(i: torch.Tensor) -> torch.Tensor:
        return x[i] if torch.is_tensor(x) else torch.from_numpy(x[i.numpy()])
    return (rows(support).to(device), support_y.to(device), rows(query).to(device), query_y.to(device),
            torch.from_numpy(classes).to(device))


# --------------------------------------------------------------------------- scoring

@torch.no_grad()
def embed(model: nn.Module, x: np.ndarray, device: torch.device | str = "cpu", batch_size: int = 512) -> torch.Tensor:
    """``model.features`` of ``x`` in eval mode, on ``device`` (the model's train/eval mode is restored)."""
    was_training = model.training
    model.eval()
    out = [model.features(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])).to(device)).float()
           for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out)


def episode_scorer(domain: Domain, shape: EpisodeShape, n_episodes: int, seed: int, name: str,
                   keep: str = "best") -> Scorer:
    """Mean query accuracy over ``n_episodes`` episodes of ``domain`` drawn once, so every epoch
    is judged on the same ones; the domain is embedded once per scoring."""
    stream = EpisodeStream(domain, shape, seed, "validation-episodes")
    episodes = [stream.sample_indices() for _ in range(n_episodes)]

    def score(model: nn.Module, device: torch.device) -> float:
        f = embed(model, domain.x, device)
        correct = f.new_zeros(())  # summed on the device: one wait for the GPU per scoring, not per episode
        for classes, idx in episodes:
            fs, ys, fq, yq, _ = episode_tensors(f, idx, shape.n_shot, classes, device)
            correct += prototypical_loss(fs, ys, fq, yq, shape.n_way)[1]
        return float(correct) / len(episodes)

    return Scorer(name, score, keep)


def meta_checkpoint(data: AdaptationData, classes: tuple[str, ...], train_shape: EpisodeShape,
                    config: ProtonetConfig, seed: int) -> Scorer:
    """Validation episodes of the meta-training classes from ``source_val``; where it has too few
    samples for any, keep the last epoch and report episode accuracy on the training episodes."""
    shape = episode_shape(data.source_val, classes, train_shape.n_way, train_shape.n_shot, config.n_query)
    if shape is not None:
        return episode_scorer(data.source_val, shape, config.val_episodes, seed,
                              f"query accuracy on {config.val_episodes} fixed {shape.n_way}-way {shape.n_shot}-shot "
                              f"episodes of the source validation split (meta-training classes)")
    return episode_scorer(data.source_train, train_shape, config.val_episodes, seed,
                          "last epoch (the source validation split has too few samples of the meta-training "
                          "classes for episodes); score = query accuracy on source training episodes", keep="last")


# --------------------------------------------------------------------------- the method

@register
class Protonet(Method):
    name = "protonet"
    description = ("prototypical networks: episodic meta-training on the source's other classes, then a "
                   "nearest-prototype head from the few target labels")
    needs_target_labels = True
    uses_source = True
    new_task_only = True
    Config = ProtonetConfig

    @classmethod
    def check_data(cls, data: AdaptationData) -> None:
        super().check_data(data)
        counts = dict(zip(data.source_train.classes, data.source_train.class_counts().tolist()))
        usable = [c for c in meta_training_classes(data) if counts.get(c, 0) >= 2]
        if len(usable) < 2:
            raise MethodRequirementError(
                f"method '{cls.name}' meta-trains on the source classes that are not target classes, but fewer "
                f"than 2 of them ({len(usable)}) have the 2 samples (one support, one query) an episode needs")
        labels = data.target_labelled.class_counts()
        if labels.min() == 0:
            missing = data.target_classes[int(np.argmin(labels))]
            raise MethodRequirementError(
                f"method '{cls.name}' places one prototype per target class, but target class '{missing}' "
                "has no labelled sample")

    def train(self, source_model, data: AdaptationData, config: ProtonetConfig, settings: TrainSettings,
              log: LogFn | None) -> AdaptResult:
        seed_everything(settings.seed)
        # With fine-tuning, the prototypes come only from the labels it trains on, never from the
        # held-out ones that choose its checkpoint.
        support = labelled_target_checkpoint(data, settings)[0] if config.finetune else data.target_labelled
        n_shot = config.n_shot or int(support.class_counts().min())
        meta = self.meta_train(source_model, data, config, settings, log, n_shot)
        model = meta.model
        with torch.no_grad():
            c = prototypes(embed(model, support.x), torch.from_numpy(support.y), data.n_target_classes)
        model.head = prototype_head(c)
        model.spec = target_spec(model.spec, data)
        history = [{**h, "stage": "episodic"} for h in meta.history]
        if not config.finetune:
            return AdaptResult(model=model.eval(), history=history, checkpoint_criterion=meta.checkpoint_criterion,
                               best_epoch=meta.best_epoch, best_score=meta.best_score)
        return self.finetune(model, data, config, settings, log, meta, history)

    def meta_train(self, source_model, data: AdaptationData, config: ProtonetConfig, settings: TrainSettings,
                   log: LogFn | None, n_shot: int) -> AdaptResult:
        """Episodic training of a copy of the source network; the result keeps the source head."""
        classes = meta_training_classes(data)
        shape = episode_shape(data.source_train, classes, config.n_way, n_shot, config.n_query)
        if shape is None:
            raise MethodRequirementError(
                f"method '{self.name}' needs at least 2 meta-training classes (source classes that are not target "
                f"classes) with {n_shot + 1} source samples each ({n_shot}-shot episodes plus a query)")
        stream = EpisodeStream(data.source_train, shape, settings.seed, "episodes")
        scorer = meta_checkpoint(data, shape.classes, shape, config, settings.seed)
        model = student_from(source_model, new_head=False, seed=settings.seed)

        def step(s: TrainingStep) -> dict[str, torch.Tensor]:
            xs, ys, xq, yq, _ = s.batches["episodes"]
            f = model.features(torch.cat([xs, xq]))  # one pass: batch-norm sees the whole episode
            loss, acc = prototypical_loss(f[:len(xs)], ys, f[len(xs):], yq, shape.n_way)
            return {"loss": loss, "episode_accuracy": acc}

        n = self.episodes_per_epoch(stream, config, settings)
        return run_training(model, [param_group(backbone_parameters(model))], step, {"episodes": stream}, scorer,
                            settings, n, log, description=f"{self.name} episodes")

    @staticmethod
    def episodes_per_epoch(stream: EpisodeStream, config: ProtonetConfig, settings: TrainSettings) -> int:
        if config.episodes_per_epoch is None:
            return steps_per_epoch([len(stream)], 1, settings.min_steps_per_epoch, settings.max_steps_per_epoch)
        if settings.max_steps_per_epoch is not None:
            return min(config.episodes_per_epoch, settings.max_steps_per_epoch)
        return config.episodes_per_epoch

    def finetune(self, model: nn.Module, data: AdaptationData, config: ProtonetConfig, settings: TrainSettings,
                 log: LogFn | None, meta: AdaptResult, history: list[dict]) -> AdaptResult:
        """Cross-entropy on the target labels from the prototype head on (under the same settings, so a
        trial's ``epoch_limit`` limits this stage too); its epochs are logged after the episodic ones,
        prefixed ``finetune_``."""
        for p in model.parameters():
            p.requires_grad_(True)
        if config.finetune_backbone:
            groups = [param_group(model.parameters())]
        else:
            freeze(model.blocks)
            groups = [param_group(model.head.parameters())]
        # A continuation belongs to one run, the episodic one: this second run starts afresh from
        # the meta-trained network every time, so a continued fit ends where an uninterrupted one does.
        with continuing(Continuation()):
            tuned = fit_on_labelled_target(model, groups, data, settings, _after(log, len(meta.history)),
                                           description=f"{self.name} finetune")
        return AdaptResult(model=tuned.model, history=history + [{**h, "stage": "finetune"} for h in tuned.history],
                           checkpoint_criterion=f"episodes: {meta.checkpoint_criterion}; fine-tuning: "
                                                f"{tuned.checkpoint_criterion}",
                           best_epoch=tuned.best_epoch, best_score=tuned.best_score)


def _after(log: LogFn | None, offset: int) -> LogFn | None:
    """``log`` for a second stage: its epochs numbered on from ``offset``, its metrics prefixed."""
    if log is None:
        return None
    return lambda epoch, metrics: log(offset + epoch, {f"finetune_{k}": v for k, v in metrics.items()})
