"""Bringing two domains to one image size and channel count."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from transferlab.data.types import Domain
from transferlab.errors import DataError

_LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def harmonise(domain: Domain, image_size: int, channels: int) -> Domain:
    """Resize (antialiased bilinear) to ``image_size`` square and convert grey <-> RGB (by repetition
    and by luminance). Feature-vector domains pass through unchanged."""
    if not domain.is_image:
        return domain
    n, c, h, w = domain.x.shape
    if c not in (1, 3):
        raise DataError(f"domain '{domain.name}' has {c} channels; only grey (1) and RGB (3) images are supported")
    if (c, h, w) == (channels, image_size, image_size):
        return domain
    out = np.empty((n, channels, image_size, image_size), dtype=np.float32)
    for start in range(0, n, 1024):
        batch = torch.from_numpy(np.ascontiguousarray(domain.x[start:start + 1024]))
        if (h, w) != (image_size, image_size):
            batch = F.interpolate(batch, size=(image_size, image_size), mode="bilinear", align_corners=False,
                                  antialias=True)
        if c == 1 and channels == 3:
            batch = batch.expand(-1, 3, -1, -1)
        elif c == 3 and channels == 1:
            batch = (batch * _LUMA).sum(dim=1, keepdim=True)
        out[start:start + len(batch)] = batch.clamp(0, 1).numpy()
    return Domain(domain.name, out, domain.y, domain.classes)
