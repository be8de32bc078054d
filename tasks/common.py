"""Small pieces several stages share."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from transferlab.config import IMAGENET_MEAN, IMAGENET_STD, PipelineParams, TrainParams
from transferlab.data import Domain
from transferlab.models import ModelSpec
from transferlab.training import TrainSettings


def train_settings(params: PipelineParams, train: TrainParams, seed: int | None = None) -> TrainSettings:
    return TrainSettings(**train.model_dump(), seed=params.seed if seed is None else seed, device=params.device)


def adapt_seeds(params: PipelineParams) -> list[int]:
    """The training seeds of adapt (and of evaluate's audit): ``adapt.seeds`` or just ``seed``."""
    return list(params.adapt.seeds or [params.seed])


def model_spec(params: PipelineParams, domain: Domain) -> ModelSpec:
    """The architecture pretrain trains on ``domain``: its classes, its image shape (or feature width).
    torchvision architectures keep torchvision's convention, RGB normalised by ImageNet's statistics,
    so that a state dict exported from one loads elsewhere (and back, as ``model.pretrained``) as is."""
    classes = {"num_classes": domain.num_classes, "classes": list(domain.classes)}
    if not domain.is_image:
        return params.model.spec(in_channels=1, image_size=28, input_dim=domain.x.shape[1],
                                 num_classes=domain.num_classes).model_copy(update={"arch": "mlp", **classes})
    _, channels, size, _ = domain.x.shape
    arch = params.model.arch if params.model.arch != "mlp" else "lenet"
    spec = params.model.spec(in_channels=channels, image_size=size, input_dim=None, num_classes=domain.num_classes)
    update = {"arch": arch, **classes}
    if arch.startswith("tv-"):
        update.update(in_channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return ModelSpec(**{**spec.model_dump(), **update})


def input_example(*domains: Domain | None) -> np.ndarray:
    """Two real samples of the first non-empty domain given: a batch of one would make the exported
    graph fix the batch size at 1."""
    domain = next(d for d in domains if d is not None and len(d) >= 2)
    return np.ascontiguousarray(domain.x[:2])


def epoch_logger(run_, prefix: str = ""):
    def log(step: int, metrics: dict[str, float]) -> None:
        run_.log_metrics({f"{prefix}{k}": v for k, v in metrics.items()}, step=step)
    return log


def rel(path: Path) -> str:
    return str(path).rstrip("/")
