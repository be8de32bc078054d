"""Named, seeded domain shifts with a severity knob, to make domain pairs of known difficulty.

Every shift maps images in [0, 1] to images in [0, 1]; severity 0 leaves the data as it is
(``colour-background`` still turns grey into RGB) and 1 is the strongest form:

| name | what severity s does |
| --- | --- |
| colour-background | MNIST-M style: blend with ``|background - digit|`` over a random smooth colour texture, weight s |
| invert | ``(1 - s) x + s (1 - x)`` |
| rotate | each image turned by a random angle in ``[-90 s, 90 s]`` degrees |
| blur | Gaussian blur with sigma ``s * side / 8`` pixels |
| noise | additive Gaussian noise with std ``0.5 s`` (feature vectors: ``0.5 s`` × each feature's std) |
| rescale | content scaled by ``1 - 0.6 s`` about the centre (smaller digits, wider margins) |
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from transferlab.data.types import Domain
from transferlab.errors import DataError
from transferlab.seed import Seed

ShiftName = Literal["colour-background", "invert", "rotate", "blur", "noise", "rescale"]
_BATCH = 1024


class ShiftSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ShiftName
    severity: float = Field(0.5, ge=0.0, le=1.0)
    seed: Seed = 0


def _batches(x: np.ndarray):
    for start in range(0, len(x), _BATCH):
        yield start, torch.from_numpy(np.ascontiguousarray(x[start:start + _BATCH]))


def _colour_background(x: np.ndarray, s: float, gen: torch.Generator) -> np.ndarray:
    n, c, h, w = x.shape
    out = np.empty((n, 3, h, w), dtype=np.float32)
    for start, batch in _batches(x):
        rgb = batch.expand(-1, 3, -1, -1) if c == 1 else batch[:, :3]
        # A smooth random colour texture per image: a 4x4 grid of colours, upsampled.
        grid = torch.rand(len(batch), 3, 4, 4, generator=gen)
        background = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=False)
        out[start:start + len(batch)] = ((1 - s) * rgb + s * (background - rgb).abs()).clamp(0, 1).numpy()
    return out


def _affine(x: np.ndarray, gen: torch.Generator, make_theta) -> np.ndarray:
    out = np.empty_like(x)
    for start, batch in _batches(x):
        theta = make_theta(len(batch), gen)
        grid = F.affine_grid(theta, list(batch.shape), align_corners=False)
        out[start:start + len(batch)] = F.grid_sample(batch, grid, align_corners=False,
                                                      padding_mode="zeros").clamp(0, 1).numpy()
    return out


def _rotate(x: np.ndarray, s: float, gen: torch.Generator) -> np.ndarray:
    def theta(n, g):
        angle = (torch.rand(n, generator=g) * 2 - 1) * s * torch.pi / 2
        cos, sin = torch.cos(angle), torch.sin(angle)
        zeros = torch.zeros(n)
        return torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
    return _affine(x, gen, theta)


def _rescale(x: np.ndarray, s: float, gen: torch.Generator) -> np.ndarray:
    factor = 1.0 - 0.6 * s

    def theta(n, g):
        t = torch.zeros(n, 2, 3)
        t[:, 0, 0] = t[:, 1, 1] = 1.0 / factor  # sampling a wider window shrinks the content
        return t
    return _affine(x, gen, theta)


def _blur(x: np.ndarray, s: float) -> np.ndarray:
    sigma = s * x.shape[-1] / 8
    if sigma < 1e-3:
        return x.copy()
    radius = max(1, int(np.ceil(3 * sigma)))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    out = np.empty_like(x)
    for start, batch in _batches(x):
        y = F.pad(batch, (radius, radius, radius, radius), mode="replicate")
        y = F.conv2d(y, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
        y = F.conv2d(y, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
        out[start:start + len(batch)] = y.clamp(0, 1).numpy()
    return out


def apply_shift(domain: Domain, spec: ShiftSpec) -> Domain:
    """``domain`` with ``spec`` applied; deterministic for a given seed. A lazy domain is shifted row by
    row when read, each row drawing from its own generator (seeded by the seed and the row's id), so a
    row looks the same whichever subset or batch it is read in."""
    if not domain.is_image and spec.name != "noise":
        raise DataError(f"shift '{spec.name}' needs images, but domain '{domain.name}' holds feature vectors")
    name = f"{domain.name}+{spec.name}({float(spec.severity):g})"
    if domain.is_lazy:
        return Domain(name, _lazy_shift(domain, spec), domain.y, domain.classes)
    gen = torch.Generator().manual_seed(spec.seed)
    scale = domain.x.std(axis=0, keepdims=True) * 0.5 * float(spec.severity) if not domain.is_image else None
    return Domain(name, _shifted(domain.x, spec, gen, scale), domain.y, domain.classes)


def _shifted(x: np.ndarray, spec: ShiftSpec, gen: torch.Generator, vector_scale: np.ndarray | None) -> np.ndarray:
    s = float(spec.severity)
    if vector_scale is not None:  # feature vectors: noise of 0.5 s times each feature's spread
        noise = torch.randn(x.shape, generator=gen).numpy()
        return (x + noise * vector_scale).astype(np.float32)
    if spec.name == "colour-background":
        return _colour_background(x, s, gen)
    if spec.name == "invert":
        return ((1 - s) * x + s * (1 - x)).astype(np.float32)
    if spec.name == "rotate":
        return _rotate(x, s, gen)
    if spec.name == "blur":
        return _blur(x, s)
    if spec.name == "noise":
        return np.clip(x + 0.5 * s * torch.randn(x.shape, generator=gen).numpy(), 0, 1).astype(np.float32)
    return _rescale(x, s, gen)


def _lazy_shift(domain: Domain, spec: ShiftSpec):
    x = domain.x
    std = None
    if not domain.is_image:  # the spread of each feature over the whole domain, in one pass
        total, total_sq, n = 0.0, 0.0, len(x)
        for _, rows in x.chunks(4096):
            total, total_sq = total + rows.sum(0, dtype=np.float64), total_sq + (rows.astype(np.float64) ** 2).sum(0)
        std = np.sqrt(np.maximum(total_sq / n - (total / n) ** 2, 0)).astype(np.float32)[None] * 0.5 * spec.severity

    def shift_rows(rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
        out = [_shifted(row[None], spec, torch.Generator().manual_seed(spec.seed * 1_000_003 + int(i)), std)[0]
               for row, i in zip(rows, ids)]
        return np.stack(out) if out else rows
    shape = (3, *x.shape[2:]) if spec.name == "colour-background" else x.shape[1:]
    return x.map(shift_rows, shape, f"shift {spec.model_dump_json()}")
