"""Progressive neural networks (Rusu et al. 2016): a frozen source column, a new target column.

The target column has the source architecture and fresh weights. Before each of its blocks
i ≥ 1, and before the head, it receives a lateral connection from the source column:

    h_i^t = block_i^t( h_{i-1}^t + U_i(h_{i-1}^s) ),       h_i^s = block_i^s(h_{i-1}^s)
    logits = head( h_L^t + U_{L+1}(h_L^s) )

U_i is a 1×1 convolution for feature maps and a linear map for vectors, initialised at zero
so training starts from the plain target column and learns how much source knowledge to pull
in. The source column is never trained, so what the source model knew can never be harmed.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from transferlab.models.classifier import Classifier, ModelSpec


def _lateral(shape: torch.Size) -> nn.Module:
    if len(shape) == 4:
        layer: nn.Module = nn.Conv2d(shape[1], shape[1], 1)
    else:
        layer = nn.Linear(shape[1], shape[1])
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class ProgressiveClassifier(Classifier):
    """A :class:`Classifier` whose ``blocks``/``head`` are the target column; ``source_blocks``
    hold the frozen source column and ``laterals`` the connections between them."""

    def __init__(self, spec: ModelSpec, target: Classifier, source: Classifier):
        super().__init__(spec, list(zip(target.block_names, target.blocks)), target.feature_dim)
        self.head = target.head
        self.source_blocks = source.blocks
        with torch.no_grad():
            h = torch.zeros(2, spec.in_channels, spec.image_size, spec.image_size) if spec.input_dim is None \
                else torch.zeros(2, spec.input_dim)
            shapes = []
            for block in source.blocks:
                h = block.eval()(h)
                shapes.append(h.shape)
        # one lateral into every block after the first, and one into the head
        self.laterals = nn.ModuleList(_lateral(s) for s in shapes)

    def _columns(self, x: torch.Tensor):
        x = self.adapter(x)
        hs, ht = x, x
        outs = []
        for i, (bt, bs) in enumerate(zip(self.blocks, self.source_blocks)):
            if i > 0:
                ht = ht + self.laterals[i - 1](hs)
            ht, hs = bt(ht), bs(hs)
            outs.append(ht)
        return ht + self.laterals[-1](hs), outs

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._columns(x)[0].flatten(1)

    def block_outputs(self, x: torch.Tensor, flatten: bool = True) -> "OrderedDict[str, torch.Tensor]":
        shape = (lambda t: t.flatten(1)) if flatten else (lambda t: t)
        out: OrderedDict[str, torch.Tensor] = OrderedDict(input=shape(x))
        final, outs = self._columns(x)
        for name, h in zip(self.block_names, outs):
            out[name] = shape(h)
        out["logits"] = self.head(final.flatten(1))
        return out
