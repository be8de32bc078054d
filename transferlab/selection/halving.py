"""How much each round of successive halving trains, so that the whole selection fits its budget.

Trials are continued, not restarted (:mod:`transferlab.training.continuation`): a round takes
each surviving arm to a *cumulative* fidelity c_r (epochs since the arm's trial began), and
pays only for the increment. The fidelities grow geometrically, c_{r+1} = η c_r, as in
Li et al. (2018), capped at a full run. A round's cost counts every training it runs:

    cost_r = Σ_arms Σ_folds max(0, c_r − trained so far)

where a fold that has not trained yet (the final round's extra cross-validation folds) pays
its whole c_r. Before each round :func:`round_fidelity` picks the largest c_r whose cost,
plus the worst case of every later round (each survivor training, with all K folds in a
cross-validated final round), fits in the budget that is left. Later rounds re-plan with what
was actually spent, so an arm that trains nothing (``source-only``), stops early or is
refused leaves its share to the rounds after it.
"""

from __future__ import annotations

import math


def halving_rounds(n_arms: int, eta: int) -> int:
    """R = ⌈log_η n⌉ (at least one round)."""
    rounds, n = 1, n_arms
    while n > eta:
        n = math.ceil(n / eta)
        rounds += 1
    return rounds if n_arms > 1 else 1


def schedule_cost(c: float, trained: list[list[float]], rounds_left: int, eta: int, final_folds: int,
                  full: float) -> float:
    """Epochs this round costs at fidelity ``c`` plus the worst case of the ``rounds_left − 1``
    rounds after it. ``trained[i]``: for each fold arm i trains this round, the epochs it has
    trained already (0 for a fresh fold; an empty list for an arm that trains nothing)."""
    cost = sum(max(0.0, c - t) for folds in trained for t in folds)
    n, previous = len(trained), c
    for j in range(1, rounds_left):
        n = max(1, math.ceil(n / eta))
        cj = min(full, c * eta ** j)
        folds = final_folds if j == rounds_left - 1 else 1
        cost += n * (max(0.0, cj - previous) + (folds - 1) * cj)
        previous = cj
    return cost


def round_fidelity(budget_left: float, trained: list[list[float]], rounds_left: int, eta: int,
                   final_folds: int, full: float) -> float:
    """The largest cumulative fidelity (epochs, at most ``full``) this round can train its arms to
    without the rest of the selection overspending ``budget_left``."""
    if schedule_cost(full, trained, rounds_left, eta, final_folds, full) <= budget_left:
        return float(full)
    lo, hi = 0.0, float(full)
    for _ in range(60):  # cost is non-decreasing in c: bisect to well below one optimiser step
        mid = (lo + hi) / 2
        if schedule_cost(mid, trained, rounds_left, eta, final_folds, full) <= budget_left:
            lo = mid
        else:
            hi = mid
    return lo


def successive_halving_schedule(n_arms: int, budget_epochs: float, eta: int, full_epochs: float,
                                final_folds: int = 1) -> list[tuple[int, float]]:
    """[(arms, cumulative epochs)] per round when every arm trains and survivors are continued."""
    rounds = halving_rounds(n_arms, eta)
    schedule, n, left, done = [], n_arms, float(budget_epochs), 0.0
    for r in range(rounds):
        folds = final_folds if r == rounds - 1 else 1
        trained = [[done] + [0.0] * (folds - 1) for _ in range(n)]
        c = round_fidelity(left, trained, rounds - r, eta, final_folds, full_epochs)
        left -= sum(max(0.0, c - t) for f in trained for t in f)
        schedule.append((n, c))
        done, n = max(done, c), max(1, math.ceil(n / eta))
    return schedule
