r"""Whether to adapt directly or through stepping stones, and through which ones.

Inputs: distances d(a, b) between the source S, the target T and each candidate intermediate I,
measured in one feature space (the source model's penultimate features) with one kernel, so they
are comparable (:func:`transferlab.similarity.chain.chain_distances`: d = MMD, the square root of
MMD², a metric), and whether the direct shift is significant (the MMD test's p-value).

The rule:

1. No candidate, or the direct shift is not significant (p ≥ α): adapt directly; there is no
   river to cross.
2. A candidate is a stepping stone only if it lies *between* S and T:
   d(S, I) < d(S, T) and d(I, T) < d(S, T). Others are dropped (one that is farther from either
   end than the ends are from each other only lengthens the way).
3. The stones are ordered by their distance from the source, d(S, I). Every order-preserving
   sub-chain S → I_a → … → I_b → T is scored by its longest hop (the bottleneck)
   ``max_t d(D_{t-1}, D_t)``; the lowest bottleneck wins, ties go to fewer hops.
4. The chain is used only if its bottleneck is at most ``max_hop_ratio`` × d(S, T).

Why: Kumar et al. (2020, Theorem 3.2 and §3) bound the error of gradual self-training by a
factor that grows with the shift of each step (β = 2 / (1 − ρR) per step for a per-step
Wasserstein shift ρ), and show that self-training across one large shift can fail badly while the
same total shift in small steps does not. What limits a chain is therefore its largest step,
not the sum of steps. By the triangle inequality of MMD, d(S, T) ≤ Σ hops, so a chain can never
be shorter in total; it helps only by cutting the largest step. Each hop also costs a full
training run and compounds its own errors (the bound's β^T), so a chain must cut the largest step
clearly: ``max_hop_ratio`` (default 0.75) is meant to leave a margin over the MMD estimate's own
noise, and ties prefer fewer hops. The 0.75 was set a priori, before benchmarks/transitive.py
existed, and not tuned on any split (that benchmark's test splits only score the rule against the
oracle); the estimate's noise at a few hundred samples per domain was not measured for it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import combinations, pairwise

from pydantic import BaseModel, ConfigDict, Field

from transferlab.data.labels import DOMAIN_ADAPTATION

MAX_CANDIDATES = 8  # 2^8 sub-chains at most
SELF_TRAINING = "self-training"  # gradual self-training (transferlab.transitive), a hop method of its own


class TransitiveConfig(BaseModel):
    """The select stage's knobs for transitive transfer (params.yaml ``select.transitive``)."""

    model_config = ConfigDict(extra="forbid")

    max_hop_ratio: float = Field(0.75, gt=0, le=1, description="use a chain only if its longest hop is at most "
                                                                 "this share of the direct distance")
    hop_method: str | None = Field(None, description="how each hop adapts: 'self-training' (gradual "
                                                     "self-training, Kumar et al. 2020) or a label-free method "
                                                     "name; null: the method select chose")
    force: bool | None = Field(None, description="true/false overrides the rule (the reason says so); null: the rule")


@dataclass
class ChainDecision:
    use: bool
    chain: list[str]                       # intermediates in hop order (empty when direct)
    reason: str
    direct: float | None = None            # d(S, T)
    bottleneck: float | None = None        # longest hop of the chosen chain
    hops: list[float] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _d(dist: dict[str, dict[str, float]], a: str, b: str) -> float:
    return float(dist[a][b])


def _hops(dist, chain: tuple[str, ...], source: str, target: str) -> list[float]:
    stops = (source, *chain, target)
    return [_d(dist, a, b) for a, b in pairwise(stops)]


def _stones(dist, candidates: list[str], source: str, target: str) -> tuple[list[str], dict[str, str]]:
    direct = _d(dist, source, target)
    stones, dropped = [], {}
    for name in candidates:
        ds, dt = _d(dist, source, name), _d(dist, name, target)
        if ds >= direct or dt >= direct:
            dropped[name] = (f"not between source and target (d(source, {name}) = {ds:.3g}, d({name}, target) = "
                             f"{dt:.3g}, direct {direct:.3g})")
        else:
            stones.append(name)
    stones.sort(key=lambda n: (_d(dist, source, n), n))
    if len(stones) > MAX_CANDIDATES:
        for name in stones[MAX_CANDIDATES:]:
            dropped[name] = f"beyond the {MAX_CANDIDATES} intermediates nearest the source"
        stones = stones[:MAX_CANDIDATES]
    return stones, dropped


def best_chain(dist, stones: list[str], source: str, target: str) -> tuple[tuple[str, ...], list[float]]:
    """The order-preserving sub-chain of ``stones`` with the lowest longest hop (ties: fewer hops)."""
    best: tuple[float, int, tuple[str, ...]] | None = None
    for size in range(1, len(stones) + 1):
        for chain in combinations(stones, size):
            key = (max(_hops(dist, chain, source, target)), size, chain)
            if best is None or key[:2] < best[:2]:
                best = key
    return best[2], _hops(dist, best[2], source, target)


def choose_chain(dist: dict[str, dict[str, float]], candidates: list[str], *, p_value: float | None, alpha: float,
                 config: TransitiveConfig, source: str = "source", target: str = "target") -> ChainDecision:
    """The decision of the module docstring; ``dist[a][b]`` holds d(a, b) for every pair of names."""
    if not candidates:
        return ChainDecision(False, [], "no intermediate domain was given (data.intermediate): adapt directly")
    direct = _d(dist, source, target)
    stones, dropped = _stones(dist, candidates, source, target)
    chain, hops = best_chain(dist, stones, source, target) if stones else ((), [])
    bottleneck = max(hops) if hops else None
    base = {"direct": direct, "dropped": dropped}
    if config.force is not None:
        if config.force and not chain:
            chain, hops = tuple(sorted(candidates, key=lambda n: _d(dist, source, n))), []
            hops = _hops(dist, chain, source, target)
            bottleneck = max(hops)
        verdict = "through " + " → ".join(chain) if config.force else "directly"
        return ChainDecision(bool(config.force), list(chain) if config.force else [],
                             f"select.transitive.force is {str(config.force).lower()}: adapt {verdict}, "
                             "whatever the distances say", bottleneck=bottleneck, hops=hops, **base)
    if p_value is not None and p_value >= alpha:
        return ChainDecision(False, [], f"the direct shift is not significant (MMD p = {p_value:.3g} ≥ α = {alpha:g}): "
                             "there is nothing to bridge, adapt directly", **base)
    if not chain:
        return ChainDecision(False, [], "no intermediate lies between source and target (each is at least as far "
                             "from one end as the ends are from each other): adapt directly", **base)
    path = " → ".join(("source", *chain, "target"))
    ratio = bottleneck / direct if direct > 0 else float("inf")
    if ratio > config.max_hop_ratio:
        return ChainDecision(False, [], f"the best chain {path} has a longest hop of {bottleneck:.3g}, {ratio:.2f} of "
                             f"the direct distance {direct:.3g}, above select.transitive.max_hop_ratio "
                             f"{config.max_hop_ratio:g}: it would not shorten the largest step enough, adapt "
                             "directly", bottleneck=bottleneck, hops=hops, **base)
    return ChainDecision(True, list(chain), f"adapt in {len(hops)} hops {path}: the longest hop ({bottleneck:.3g}) is "
                         f"{ratio:.2f} of the direct distance {direct:.3g} (at most select.transitive.max_hop_ratio "
                         f"{config.max_hop_ratio:g}), and gradual adaptation's error grows with the largest step "
                         "(Kumar et al. 2020)", bottleneck=bottleneck, hops=hops, **base)


def can_hop(method: str) -> bool:
    """Whether ``method`` can make a hop into an unlabelled pool: gradual self-training, or a
    registered method that adapts with unlabelled target data and needs no target labels."""
    if method == SELF_TRAINING:
        return True
    from transferlab.methods import get_method

    cls = get_method(method)
    return cls.uses_unlabelled_target and not cls.needs_target_labels


def _composite(method: str) -> bool:
    from transferlab.methods import get_method

    return get_method(method).composite


def decide_transitive(chain: dict, *, road: str, chosen_method: str, p_value: float | None, alpha: float,
                      config: TransitiveConfig) -> tuple[ChainDecision, str]:
    """(the decision, the hop method) for the similarity report's chain section ``chain`` (distances
    from :func:`transferlab.similarity.chain.chain_report`, or ``{"skipped": why}``): the hops adapt
    with ``config.hop_method``, or ``chosen_method`` when it is null. No hops for a new task (the pools
    carry no labels of the new classes) nor with a method that cannot adapt to unlabelled data;
    otherwise :func:`choose_chain`."""
    hop = config.hop_method or chosen_method
    if chain.get("skipped"):
        return ChainDecision(False, [], f"adapt directly: {chain['skipped']}"), hop
    if road != DOMAIN_ADAPTATION:
        return ChainDecision(False, [], "adapt directly: the target is a new task (other classes), and hops "
                                        "through unlabelled pools need the source's classes"), hop
    if hop != SELF_TRAINING and _composite(hop):
        return ChainDecision(False, [], f"adapt directly: '{hop}' combines several finished models, while each hop "
                                        "adapts one network from the last (set select.transitive.hop_method to "
                                        "'self-training' or a label-free method)"), hop
    if not can_hop(hop):
        return ChainDecision(False, [], f"adapt directly: the chosen method '{hop}' does not adapt to unlabelled "
                                        "data, so it cannot make a hop into an unlabelled pool (set "
                                        "select.transitive.hop_method to 'self-training' or a label-free method)"), hop
    return choose_chain(chain["mmd"], list(chain.get("intermediates") or []), p_value=p_value, alpha=alpha,
                        config=config), hop
