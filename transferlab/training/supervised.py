"""Plain supervised training with early stopping on validation accuracy, optionally attribute-supervised."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from transferlab.data.types import Domain
from transferlab.errors import DataError
from transferlab.training.augment import Augmenter
from transferlab.training.batches import BatchStream, steps_per_epoch
from transferlab.training.evaluation import accuracy_scorer
from transferlab.training.loop import LogFn, TrainingStep, param_group, run_training, seed_everything
from transferlab.training.result import AdaptResult
from transferlab.training.settings import TrainSettings


def attribute_bce(logits: torch.Tensor, class_attributes: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Multi-label binary cross-entropy of attribute logits z (n, M) against the signatures of the
    samples' classes, a = A[y] ∈ [0, 1]^{n×M} (A: one row per *training* class):

        L_attr = −1/(nM) Σ_i Σ_m [a_im log σ(z_im) + (1 − a_im) log(1 − σ(z_im))]

    (the attribute layer of DAP, Lampert et al. 2014, learnt jointly with the representation, as in
    attribute-supervised embeddings; Akata et al.'s ALE learns the same attribute space with a ranking loss)."""
    return F.binary_cross_entropy_with_logits(logits, class_attributes[y])


def train_classifier(model, train: Domain, val: Domain, settings: TrainSettings,
                     log: LogFn | None = None, class_attributes: np.ndarray | None = None) -> AdaptResult:
    """Minimise cross-entropy on ``train``; keep the epoch with the best accuracy on ``val``.

    With ``settings.label_smoothing`` ε > 0 the targets are smoothed: for K classes,
    L = −Σ_k q_k log p_k with q = (1 − ε) one-hot(y) + ε / K (PyTorch's ``label_smoothing``).
    ``settings.augment`` augments each batch per sample (SHOT's source recipe trains with random
    crops). Trains ``model`` in place (pass a fresh one) and returns it at its best epoch.

    With ``class_attributes`` A (one row in [0, 1]^M per class of ``train``, in its label order;
    only the training classes' rows: an unseen class's signature is never read here) the model's
    ``attribute_head`` is trained beside the class head on the same features, and the loss is
    L = CE + β L_attr (:func:`attribute_bce`, β = ``settings.attribute_weight``), so that the
    features encode the attributes, not only which of the training classes an input is.
    """
    if len(train) == 0:
        raise DataError(f"training domain '{train.name}' is empty")
    if len(val) == 0:
        raise DataError(f"validation domain '{val.name}' is empty: it is needed to choose the checkpoint")
    seed_everything(settings.seed)
    stream = BatchStream(train, settings.batch_size, settings.seed, "train")
    augment = Augmenter(settings.augmentation)
    attributes = _attribute_targets(model, train, class_attributes)
    beta = settings.attribute_weight

    def step(s: TrainingStep):
        x, y = s.batches["train"]
        x = augment(x, settings.augment)
        if attributes is None:
            return {"loss": F.cross_entropy(model(x), y, label_smoothing=settings.label_smoothing)}
        f = model.features(x)
        ce = F.cross_entropy(model.head(f), y, label_smoothing=settings.label_smoothing)
        attr = attribute_bce(model.attribute_head(f), attributes.to(f.device), y)
        return {"loss": ce + beta * attr, "attribute_bce": attr.detach()}

    return run_training(
        model, [param_group(model.parameters())], step, {"train": stream},
        accuracy_scorer(val, f"accuracy on '{val.name}' (validation)"), settings,
        steps_per_epoch([len(train)], settings.batch_size, settings.min_steps_per_epoch,
                        settings.max_steps_per_epoch),
        log, description="train")


def _attribute_targets(model, train: Domain, class_attributes: np.ndarray | None) -> torch.Tensor | None:
    if class_attributes is None:
        return None
    a = np.asarray(class_attributes, dtype=np.float32)
    if a.ndim != 2 or a.shape[0] != len(train.classes):
        raise DataError(f"class_attributes has shape {a.shape}: it needs one row per class of '{train.name}' "
                        f"({len(train.classes)})")
    if a.min() < 0 or a.max() > 1:
        raise DataError("class_attributes must lie in [0, 1] (binarise a continuous table first)")
    head = getattr(model, "attribute_head", None)
    if head is None or head.out_features != a.shape[1]:
        raise DataError(f"the model has no attribute head of {a.shape[1]} outputs (ModelSpec.attribute_head)")
    return torch.from_numpy(a)
