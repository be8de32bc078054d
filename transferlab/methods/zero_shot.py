"""What the zero-shot methods (``dap``, ``eszsl``) share: the data they need, the source features
they learn from, and the split of the seen classes that chooses hyperparameters without any label
of an unseen class.

Zero-shot transfer (seed 004; Lampert et al. 2009, 2014): the target brings classes the source
never had, and not one label of them. What links the two is a class–attribute table: each class c
has a signature s_c ∈ ℝ^M. A method learns, on the source features of the *seen* classes (the
source's), how inputs relate to attributes; an unseen class is then predicted through its
signature alone. The only data these methods read are the source splits and the table: no target
sample, labelled or not (the unlabelled pool's labels are never touched), which
``tests/transferlab/test_methods_zero_shot.py`` checks by deleting them.

The result is an ordinary classifier over the target's classes (the source network's blocks and a
head), so it is saved, registered and evaluated like every adapted model.
"""

from __future__ import annotations

import numpy as np
import torch

from transferlab.data.attributes import ClassAttributes
from transferlab.data.types import Domain
from transferlab.errors import MethodRequirementError
from transferlab.methods.base import AdaptationData, Method

ZERO_SHOT_METHODS = ("eszsl", "dap")  # the zero-shot methods, the pipeline's default first


class ZeroShotMethod(Method):
    """A method that names the target's classes through a class–attribute table, from source data."""

    uses_source = True
    new_task_only = True
    needs_attributes = True  # preflight refuses to force one without data.attributes

    @classmethod
    def check_data(cls, data: AdaptationData) -> None:
        super().check_data(data)
        if data.class_attributes is None:
            raise MethodRequirementError(
                f"method '{cls.name}' predicts classes through their attributes, but there is no class–attribute "
                "table (set data.attributes, e.g. builtin:digits or a CSV path)")
        data.class_attributes.signatures((*data.source_classes, *data.target_classes))  # every row present
        if len(data.source_classes) < 2:
            raise MethodRequirementError(f"method '{cls.name}' needs at least 2 seen (source) classes")


def seen_unseen(data: AdaptationData) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(seen classes: the source's, unseen classes: the target's that the source lacks)."""
    seen = tuple(data.source_classes)
    return seen, tuple(c for c in data.target_classes if c not in set(seen))


@torch.no_grad()
def features_of(model: torch.nn.Module, x, batch_size: int = 512) -> np.ndarray:
    """``model.features`` of ``x`` in eval mode as float64, shape (n, d)."""
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        chunk = x[i:i + batch_size]
        out.append(model.features(torch.as_tensor(np.ascontiguousarray(chunk))).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def seen_training_set(model: torch.nn.Module, data: AdaptationData) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(features (n, d), labels in 0..len(seen)-1, seen class names) of every source sample, train and
    validation splits together: a closed form or convex fit chooses no checkpoint, so the validation
    split is more training data, and hyperparameters are chosen on held-out *classes* instead."""
    parts = [d for d in (data.source_train, data.source_val) if d is not None and len(d)]
    if not parts:
        raise MethodRequirementError("zero-shot methods learn the attributes from source data, and there is none")
    x = np.concatenate([features_of(model, d.x) for d in parts])
    y = np.concatenate([_relabel(d, data.source_classes) for d in parts])
    return x, y, tuple(data.source_classes)


def _relabel(domain: Domain, classes: tuple[str, ...]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[domain.classes[i]] for i in domain.y], dtype=np.int64)


def class_folds(n_classes: int, n_folds: int, seed: int) -> list[np.ndarray]:
    """The seen classes cut into ``n_folds`` seeded groups of pseudo-unseen classes, each of at least
    2 classes (so accuracy among them means something) and leaving at least 2 to train on; empty
    when there are too few classes for that."""
    n_folds = min(n_folds, n_classes // 2)
    if n_classes < 4 or n_folds < 2:
        return []
    order = np.random.default_rng(seed).permutation(n_classes)
    return [np.sort(f) for f in np.array_split(order, n_folds)]


def zero_shot_accuracy(scores: np.ndarray, y: np.ndarray) -> float:
    """Plain accuracy of ``scores.argmax(1)`` against ``y`` (both indexing the same candidate classes)."""
    return float((scores.argmax(1) == y).mean()) if len(y) else float("nan")


def signatures(table: ClassAttributes, classes) -> np.ndarray:
    """The signatures of ``classes`` as a float64 (len(classes), M) array."""
    return np.asarray(table.signatures(classes), dtype=np.float64)
