"""Per-sample, seeded image augmentation of whole batches, on the training device.

Two strengths, as in FixMatch / AdaMatch (Sohn et al. 2020; Berthelot et al. 2022):

- ``weak``: random translation by up to ``translate`` of the side, rotation up to ``rotate``
  degrees, scaling by 1 ± ``scale``; RGB images also get a mild colour jitter and, with ``hflip``,
  a horizontal flip (off by default: digits and text are not mirror-symmetric).
- feature vectors (not images) get additive Gaussian noise of ``noise`` times each feature's
  spread in the batch (strong: twice that), the self-ensembling paper's input noise.
- ``strong``: the weak geometry, then ``ops_per_sample`` RandAugment operations per sample, each
  drawn uniformly from :data:`STRONG_OPS` (saturation only for RGB) at a uniformly drawn magnitude
  (FixMatch's RandAugment variant), then Cutout: a square of up to ``cutout`` of the side set to grey.

Every sample draws its own parameters from torch's global generator (seeded by the training
loop, and saved with a continuation), so a run is reproducible and a batch is not augmented as
one. Geometric operations are composed into one affine matrix per sample and applied with a
single ``grid_sample``; pixel operations are masked per sample.

Why not ``torchvision.transforms.v2`` directly: called on a batch tensor, a v2 transform draws
one set of parameters for the whole batch, so per-sample augmentation needs a Python loop over
images; ``benchmarks/augment_speed.py`` measures that loop against this module (5-16× slower). The pixel
operations follow ``torchvision.transforms.v2.functional`` (brightness, contrast, saturation,
sharpness, posterize, solarize, autocontrast), and ``tests/transferlab/test_augment.py`` checks
each against it image by image. Inputs are floats in [0, 1] (what the data layer produces).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

Strength = Literal["none", "weak", "strong"]
STRONG_OPS = ("identity", "autocontrast", "brightness", "contrast", "sharpness", "posterize", "solarize",
              "rotate", "shear-x", "shear-y", "translate-x", "translate-y", "saturation")
_LUMA = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


class AugmentSpec(BaseModel):
    """The knobs of both strengths (``params.yaml``: ``pretrain.augmentation``, ``adapt.train.augmentation``)."""

    model_config = ConfigDict(extra="forbid")

    translate: float = Field(0.125, ge=0, le=0.5, description="weak: largest shift, as a share of the side")
    rotate: float = Field(10.0, ge=0, le=180, description="weak: largest rotation (degrees)")
    scale: float = Field(0.1, ge=0, lt=1, description="weak: scale factor drawn in 1 ± scale")
    hflip: bool = Field(False, description="weak: flip half the images horizontally (photographs; not digits)")
    ops_per_sample: int = Field(2, ge=0, le=len(STRONG_OPS), description="strong: RandAugment ops per sample")
    cutout: float = Field(0.5, ge=0, le=1, description="strong: largest Cutout square, as a share of the side")
    noise: float = Field(0.1, ge=0, description="feature vectors (not images): additive Gaussian noise of this "
                                                "standard deviation per feature's scale (strong: twice it)")


def _uniform(n: int, low: float, high: float, device) -> torch.Tensor:
    return (torch.rand(n) * (high - low) + low).to(device)


def _signed(n: int, high: float, device) -> torch.Tensor:
    return ((torch.rand(n) * 2 - 1) * high).to(device)


def _per_sample(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (x.dim() - 1)))


def grey(x: torch.Tensor) -> torch.Tensor:
    """Luminance (N×1×H×W) of grey or RGB images."""
    if x.shape[1] == 1:
        return x
    w = x.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = _per_sample(x, factor)
    return (f * x + (1 - f) * other).clamp(0, 1)


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, torch.zeros_like(x), factor)


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = grey(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean.expand_as(x), factor)


def saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return x if x.shape[1] == 1 else _blend(x, grey(x).expand_as(x), factor)


def sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with a 3×3 smoothing (centre weight 5, total 13) of the interior; borders stay."""
    c = x.shape[1]
    kernel = x.new_ones(3, 3)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(c, 1, 3, 3)
    blurred = x.clone()
    blurred[..., 1:-1, 1:-1] = F.conv2d(x, kernel, groups=c)
    return _blend(x, blurred, factor)


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    levels = _per_sample(x, (2 ** bits).to(x.dtype))
    return torch.minimum((x * levels).floor(), levels - 1) / levels


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= _per_sample(x, threshold), 1 - x, x)


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    low = x.amin(dim=(2, 3), keepdim=True)
    high = x.amax(dim=(2, 3), keepdim=True)
    flat = high <= low
    scale = torch.where(flat, torch.ones_like(high), 1 / (high - low).clamp_min(1e-12))
    return ((x - torch.where(flat, torch.zeros_like(low), low)) * scale).clamp(0, 1)


def affine_matrices(angle: torch.Tensor, scale: torch.Tensor, shear_x: torch.Tensor, shear_y: torch.Tensor,
                    tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """N×2×3 matrices mapping output to input coordinates in [-1, 1] (``affine_grid``'s convention):
    rotate by ``angle`` (degrees), scale, shear (tangents), translate by (tx, ty) as shares of the side."""
    a = angle * math.pi / 180
    cos, sin = torch.cos(a), torch.sin(a)
    # Forward map: translate ∘ rotate·scale ∘ shear; affine_grid needs its inverse. With y pointing
    # down, this rotation turns counter-clockwise on screen for a positive angle, as torchvision's does.
    rot = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2) * scale.view(-1, 1, 1)
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    shear = torch.stack([torch.stack([one, shear_x], -1), torch.stack([shear_y, one], -1)], -2)
    forward = rot @ shear
    inverse = torch.linalg.inv(forward)
    shift = torch.stack([tx, ty], -1).unsqueeze(-1) * 2  # shares of the side -> [-1, 1] units
    return torch.cat([inverse, -inverse @ shift], dim=-1)


def warp(x: torch.Tensor, theta: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Apply per-sample affine matrices (bilinear); pixels from outside the image are ``fill``."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    if fill == 0.0:
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    shifted = F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return shifted + fill


def cutout(x: torch.Tensor, largest: float, fill: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    side = (torch.rand(n) * largest * min(h, w)).round().to(x.device)
    cy, cx = (torch.rand(n) * h).to(x.device), (torch.rand(n) * w).to(x.device)
    ys = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
    half = (side / 2).view(-1, 1, 1)
    inside = ((ys - cy.view(-1, 1, 1)).abs() < half) & ((xs - cx.view(-1, 1, 1)).abs() < half)
    return torch.where(inside.unsqueeze(1), torch.full_like(x, fill), x)


class Augmenter:
    """``augmenter(x, strength)``: a per-sample augmented copy of the batch ``x`` (N×C×H×W)."""

    def __init__(self, spec: AugmentSpec | None = None):
        self.spec = spec or AugmentSpec()

    def __call__(self, x: torch.Tensor, strength: Strength) -> torch.Tensor:
        if strength == "none" or self.spec.noise == 0 and x.dim() != 4:
            return x
        if x.dim() != 4:  # feature vectors: noise scaled by each feature's spread in the batch
            sigma = self.spec.noise * (2 if strength == "strong" else 1)
            return x + torch.randn(x.shape).to(x.device) * sigma * x.std(0, keepdim=True)
        n, device = x.shape[0], x.device
        ops = self._draw_ops(n, x.shape[1], strength)
        theta = self._geometry(n, ops, device)
        out = warp(x, theta)
        if self.spec.hflip:
            flip = torch.rand(n).to(device) < 0.5
            out = torch.where(_per_sample(out, flip), out.flip(-1), out)
        if x.shape[1] == 3:
            out = saturation(brightness(out, _uniform(n, 0.9, 1.1, device)), _uniform(n, 0.9, 1.1, device))
        if strength == "strong":
            out = self._pixel_ops(out, ops)
            out = cutout(out, self.spec.cutout)
        return out

    def _draw_ops(self, n: int, channels: int, strength: Strength) -> dict[str, torch.Tensor]:
        """Which strong ops each sample gets: name -> bool mask (N)."""
        if strength != "strong" or self.spec.ops_per_sample == 0:
            return {}
        names = STRONG_OPS if channels == 3 else STRONG_OPS[:-1]
        picks = torch.rand(n, len(names)).argsort(dim=1)[:, :self.spec.ops_per_sample]  # without replacement
        return {name: (picks == k).any(dim=1) for k, name in enumerate(names)}

    def _geometry(self, n: int, ops: dict[str, torch.Tensor], device) -> torch.Tensor:
        s = self.spec
        angle = _signed(n, s.rotate, "cpu")
        scale = 1 + _signed(n, s.scale, "cpu")
        tx, ty = _signed(n, s.translate, "cpu"), _signed(n, s.translate, "cpu")
        shear_x, shear_y = torch.zeros(n), torch.zeros(n)
        if ops:  # RandAugment's geometric ops, at random magnitudes, on top of the weak geometry
            angle = angle + _signed(n, 30.0, "cpu") * ops["rotate"]
            shear_x = _signed(n, 0.3, "cpu") * ops["shear-x"]
            shear_y = _signed(n, 0.3, "cpu") * ops["shear-y"]
            tx = tx + _signed(n, 0.3, "cpu") * ops["translate-x"]
            ty = ty + _signed(n, 0.3, "cpu") * ops["translate-y"]
        return affine_matrices(angle, scale, shear_x, shear_y, tx, ty).to(device)

    @staticmethod
    def _pixel_ops(x: torch.Tensor, ops: dict[str, torch.Tensor]) -> torch.Tensor:
        n, device = x.shape[0], x.device
        factor = {k: _uniform(n, 0.05, 1.95, device) for k in ("brightness", "contrast", "sharpness", "saturation")}
        candidates = {
            "autocontrast": lambda: autocontrast(x),
            "brightness": lambda: brightness(x, factor["brightness"]),
            "contrast": lambda: contrast(x, factor["contrast"]),
            "sharpness": lambda: sharpness(x, factor["sharpness"]),
            "saturation": lambda: saturation(x, factor["saturation"]),
            "posterize": lambda: posterize(x, torch.randint(4, 9, (n,)).to(device)),
            "solarize": lambda: solarize(x, _uniform(n, 0.0, 1.0, device)),
        }
        for name, op in candidates.items():
            mask = ops.get(name)
            if mask is not None and bool(mask.any()):
                x = torch.where(_per_sample(x, mask.to(device)), op(), x)
        return x
