"""Method selection: which transfer method fits these two domains and this label budget.

Rule mode (:func:`select_by_rules`) reads the similarity report and applies a documented
policy; trial mode (:func:`select_by_trials`) runs short trials pruned by successive halving
and ranks them without target test labels.
"""

from transferlab.selection.config import SelectionConfig
from transferlab.selection.halving import halving_rounds, round_fidelity, successive_halving_schedule
from transferlab.selection.layers import FreezeDepth, freeze_depth
from transferlab.selection.result import Selection
from transferlab.selection.rules import rescaled_transferability, select_by_rules
from transferlab.selection.scoring import ScoringPlan, mean_rank_scores, plan_scoring
from transferlab.selection.trials import (
    Arm,
    TrialJob,
    TrialResult,
    build_arms,
    run_trial,
    select_by_trials,
)

__all__ = [
    "Arm",
    "FreezeDepth",
    "ScoringPlan",
    "TrialJob",
    "TrialResult",
    "build_arms",
    "mean_rank_scores",
    "plan_scoring",
    "run_trial",
    "halving_rounds",
    "round_fidelity",
    "select_by_trials",
    "successive_halving_schedule",
    "Selection",
    "SelectionConfig",
    "freeze_depth",
    "rescaled_transferability",
    "select_by_rules",
]
