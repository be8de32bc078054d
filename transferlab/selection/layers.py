"""How many leading blocks to transfer frozen, read from the similarity report's per-layer profile.

The seeds' layer-transfer question (Yosinski et al. 2014): shallow blocks compute features
that are general across domains, deeper ones become domain-specific. The per-layer profile
measures MMD between source and target activations after every block, so the shared prefix
of the network is the run of leading blocks where the domains still look alike.

With blocks b₁..b_B (the profile's "input" and "logits" entries are not blocks) and
normalised MMD m₁..m_B:

    k₀ = number of leading blocks with  mᵢ < layer_shift  or  p-valueᵢ ≥ alpha
    j  = argmax_{2 ≤ i ≤ k₀} (mᵢ − mᵢ₋₁)   (the largest rise of distance inside that prefix)
    k  = j − 1  if that rise ≥ layer_jump, else k₀

so freezing stops before the block where the domains start to diverge most sharply, even
when the distance there is still under the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

_NOT_BLOCKS = {"input", "logits"}


@dataclass(frozen=True)
class FreezeDepth:
    k: int  # leading blocks to copy and freeze
    n_blocks: int
    blocks: list[str]
    reason: str


def freeze_depth(layers: list[dict], *, layer_shift: float, layer_jump: float, alpha: float) -> FreezeDepth | None:
    """k from the profile, or None when it has no usable block entries."""
    blocks = [
        entry for entry in layers or []
        if entry.get("layer") not in _NOT_BLOCKS and entry.get("normalised") is not None
    ]
    if not blocks:
        return None
    names = [str(b["layer"]) for b in blocks]
    dist = [float(b["normalised"]) for b in blocks]
    k0 = 0
    for b, m in zip(blocks, dist):
        p = b.get("p_value")
        if m < layer_shift or (p is not None and p >= alpha):
            k0 += 1
        else:
            break
    k = k0
    why = (
        f"the first {k0} of {len(blocks)} blocks ({', '.join(names[:k0]) or 'none'}) keep normalised MMD "
        f"below {layer_shift:g} or show no significant shift"
    )
    if k0 >= 2:
        rises = [dist[i] - dist[i - 1] for i in range(1, k0)]
        j = max(range(len(rises)), key=lambda i: rises[i]) + 1  # 0-based index of the block after the jump
        if rises[j - 1] >= layer_jump:
            k = j
            why += (
                f"; the largest jump ({dist[j - 1]:.3f} -> {dist[j]:.3f}) comes at {names[j]}, so freezing stops "
                f"before it"
            )
    return FreezeDepth(k, len(blocks), names, why)
