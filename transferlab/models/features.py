"""Features of a frozen part of a network, computed once per content and reused.

A frozen prefix (the input adapter and the first ``k`` blocks, in eval mode, no gradient) maps the same
inputs to the same features every time; its consumers (linear probe, the frozen part of layer
transfer, each of their trials in trial-mode selection, the successive rungs of a halving schedule)
need it for the same samples again and again. :data:`CACHE` keys the features by content: a hash of
the prefix's weights and buffers, and the data's fingerprint (a lazy domain's reader and ids, an
in-memory array's bytes), so a changed weight or sample can never be served stale features. It is
bounded (least recently used out first); features larger than the bound are computed and not kept.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch

from transferlab.data.lazy import LazyArray
from transferlab.data.loading import batches_in_order


# Set on a network for the length of a training whose first blocks are frozen: how many of them. Its
# scoring (predict_logits) then reads those blocks' features from the cache too.
CACHED_PREFIX = "_transferlab_cached_prefix"


def data_fingerprint(x) -> str:
    if isinstance(x, LazyArray):
        return x.fingerprint()
    digest = hashlib.blake2b(str(x.shape).encode(), digest_size=16)
    digest.update(np.ascontiguousarray(x).tobytes())
    return digest.hexdigest()


def prefix_key(model: torch.nn.Module, k: int) -> str:
    """The frozen prefix's identity: its modules' kinds and every weight and buffer, to the bit."""
    digest = hashlib.blake2b(f"{k}".encode(), digest_size=16)
    for part in [model.adapter, *model.blocks[:k]]:
        digest.update(repr(part).encode())
        for name, tensor in part.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@torch.no_grad()
def compute_prefix(model, k: int, x, device, batch_size: int = 256) -> torch.Tensor:
    was_training = model.training
    model.eval()
    parts = [model.prefix(k, batch.to(device)).cpu() for batch in batches_in_order(x, batch_size)]
    model.train(was_training)
    return torch.cat(parts)


class FeatureCache:
    def __init__(self, max_bytes: int = 1 << 30):
        self.max_bytes = max_bytes
        self._store: OrderedDict[tuple[str, str], torch.Tensor] = OrderedDict()
        self.hits = self.misses = 0

    def prefix(self, model, k: int, x, device="cpu") -> torch.Tensor:
        """``model.prefix(k, ·)`` of every row of ``x`` (on the CPU), from the cache when it was computed."""
        key = (prefix_key(model, k), data_fingerprint(x))
        if key in self._store:
            self.hits += 1
            self._store.move_to_end(key)
            return self._store[key]
        self.misses += 1
        features = compute_prefix(model, k, x, device)
        size = features.element_size() * features.nelement()
        if size <= self.max_bytes:
            self._store[key] = features
            while sum(t.element_size() * t.nelement() for t in self._store.values()) > self.max_bytes:
                self._store.popitem(last=False)
        return features

    def clear(self) -> None:
        self._store.clear()
        self.hits = self.misses = 0


CACHE = FeatureCache()
