"""Bringing two domains to one image size and channel count."""

from __future__ import annotations

import numpy as np
import torch

from transferlab.data.lazy import LazyArray
from transferlab.data.sources import ImageFiles, resize_rows
from transferlab.data.types import Domain
from transferlab.errors import DataError

_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def harmonise_rows(batch: torch.Tensor, image_size: int, channels: int) -> torch.Tensor:
    """One batch (N, C, H, W) resized to ``image_size`` square and converted to ``channels``."""
    batch = resize_rows(batch, (image_size, image_size))
    if batch.shape[1] == 1 and channels == 3:
        batch = batch.expand(-1, 3, -1, -1)
    elif batch.shape[1] == 3 and channels == 1:
        batch = (batch * _LUMA).sum(dim=1, keepdim=True)
    return batch.clamp(0, 1)


def harmonise(domain: Domain, image_size: int, channels: int) -> Domain:
    """Resize (antialiased bilinear) to ``image_size`` square and convert grey <-> RGB (by repetition
    and by luminance). Feature-vector domains pass through unchanged. A lazy domain stays lazy: its
    rows are harmonised when read (image files straight from their own size)."""
    if not domain.is_image:
        return domain
    n, c, h, w = domain.x.shape
    if c not in (1, 3):
        raise DataError(f"domain '{domain.name}' has {c} channels; only grey (1) and RGB (3) images are supported")
    if (c, h, w) == (channels, image_size, image_size):
        return domain
    if domain.is_lazy:
        return Domain(domain.name, _harmonised(domain.x, image_size, channels), domain.y, domain.classes)
    out = np.empty((n, channels, image_size, image_size), dtype=np.float32)
    for start in range(0, n, 1024):
        batch = torch.from_numpy(np.ascontiguousarray(domain.x[start:start + 1024]))
        out[start:start + len(batch)] = harmonise_rows(batch, image_size, channels).numpy()
    return Domain(domain.name, out, domain.y, domain.classes)


def _harmonised(x: LazyArray, image_size: int, channels: int) -> LazyArray:
    if isinstance(x.reader, ImageFiles):  # resized once, from each file's own size
        x = LazyArray(x.reader.resized((image_size, image_size)), x.index)
        if x.shape[1] == channels:
            return x
    return x.map(lambda rows, ids: harmonise_rows(torch.from_numpy(rows), image_size, channels).numpy(),
                 (channels, image_size, image_size), f"harmonise {image_size} {channels}")
