"""``eszsl``: embarrassingly simple zero-shot learning (Romera-Paredes & Torr 2015), in closed form.

With X ∈ ℝ^{d×m} the source features of the m seen-class samples (one column each), Y ∈
{−1, 1}^{m×z} their class indicators over the z seen classes and S ∈ ℝ^{a×z} the seen classes'
signatures (one column per class), ESZSL learns a bilinear compatibility F(x, c) = xᵀ V s_c by

    min_V ‖Xᵀ V S − Y‖²_F + γ ‖V S‖²_F + λ ‖Xᵀ V‖²_F + γλ ‖V‖²_F        (paper, eq. 5 with β = γλ)

whose stationary point (X Xᵀ + γI) V (S Sᵀ + λI) = X Y Sᵀ is the paper's closed form (eq. 6)

    V = (X Xᵀ + γI)⁻¹ X Y Sᵀ (S Sᵀ + λI)⁻¹.

An input is assigned argmax_c xᵀ V s_c over the target's classes, seen or not: a linear head with
weights W = (V S_target)ᵀ and no bias, on the source network's features.

Y ∈ {−1, 1}, as in the paper: the targets are centred between "this class" and "not this class",
so the ridge fit does not spend its capacity pulling all-but-one of each row to 0; with {0, 1}
targets Y changes by a rank-one term X 1 1ᵀ Sᵀ that adds a class-dependent offset to every score.

γ and λ are chosen without any unseen-class label: the seen classes are cut into folds of
pseudo-unseen classes (:func:`transferlab.methods.zero_shot.class_folds`); for each (γ, λ) of the
grid V is fitted on the other seen classes and scored by accuracy among the held-out classes on
their samples; the pair with the best mean accuracy is refitted on every seen class.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from transferlab.methods.base import AdaptationData, MethodConfig
from transferlab.methods.heads import student_from, target_spec
from transferlab.methods.registry import register
from transferlab.methods.zero_shot import (
    ZeroShotMethod,
    class_folds,
    seen_training_set,
    signatures,
    zero_shot_accuracy,
)
from transferlab.training import AdaptResult

GRID = [1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3]


class EszslConfig(MethodConfig):
    gamma: float | None = Field(None, gt=0, description="γ, the feature-side regulariser; None: chosen on "
                                                        "pseudo-unseen seen classes")
    lam: float | None = Field(None, gt=0, description="λ, the attribute-side regulariser; None: chosen likewise")
    grid: list[float] = Field(GRID, min_length=1, description="values tried for γ and for λ")
    folds: int = Field(3, ge=2, description="folds of pseudo-unseen seen classes that choose γ, λ")


def eszsl_closed_form(x: np.ndarray, y: np.ndarray, s: np.ndarray, gamma: float, lam: float) -> np.ndarray:
    """V = (X Xᵀ + γI)⁻¹ X Y Sᵀ (S Sᵀ + λI)⁻¹, with ``x`` X (d, m), ``y`` Y (m, z), ``s`` S (a, z); V is (d, a)."""
    d, a = x.shape[0], s.shape[0]
    left = np.linalg.solve(x @ x.T + gamma * np.eye(d), x @ y @ s.T)  # (X Xᵀ + γI)⁻¹ X Y Sᵀ
    return np.linalg.solve(s @ s.T + lam * np.eye(a), left.T).T        # (S Sᵀ + λI) is symmetric


def indicators(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Y ∈ {−1, 1}^{m×z}: +1 at each sample's class, −1 elsewhere (the paper's coding)."""
    y = -np.ones((len(labels), n_classes))
    y[np.arange(len(labels)), labels] = 1.0
    return y


def fit_eszsl(features: np.ndarray, labels: np.ndarray, seen_signatures: np.ndarray, gamma: float,
              lam: float) -> np.ndarray:
    """V from seen-class features (n, d), labels in 0..z-1 and signatures (z, a) (rows: classes)."""
    return eszsl_closed_form(features.T, indicators(labels, len(seen_signatures)), seen_signatures.T, gamma, lam)


def choose_gamma_lambda(features: np.ndarray, labels: np.ndarray, seen_signatures: np.ndarray, grid: list[float],
                        n_folds: int, seed: int) -> tuple[float, float, float | None, list[dict]]:
    """(γ, λ, their mean pseudo-unseen accuracy, the whole grid's scores) from seen classes only; with
    too few seen classes for folds, (1, 1, None, [])."""
    folds = class_folds(len(seen_signatures), n_folds, seed)
    if not folds:
        return 1.0, 1.0, None, []
    table = np.zeros((len(grid), len(grid)))
    for held in folds:
        train_classes = np.setdiff1d(np.arange(len(seen_signatures)), held)
        tr, va = np.isin(labels, train_classes), np.isin(labels, held)
        x_tr, s_tr = features[tr].T, seen_signatures[train_classes].T
        b = x_tr @ indicators(np.searchsorted(train_classes, labels[tr]), len(train_classes)) @ s_tr.T  # X Y Sᵀ
        # One eigendecomposition per side serves every γ and λ: (Q Λ Qᵀ + γI)⁻¹ = Q (Λ + γ)⁻¹ Qᵀ.
        ev_x, q_x = np.linalg.eigh(x_tr @ x_tr.T)
        ev_s, q_s = np.linalg.eigh(s_tr @ s_tr.T)
        inner = q_x.T @ b @ q_s
        f_va, y_va = features[va] @ q_x, np.searchsorted(held, labels[va])
        s_held = q_s.T @ seen_signatures[held].T
        for i, gamma in enumerate(grid):
            for j, lam in enumerate(grid):
                core = inner / np.multiply.outer(ev_x + gamma, ev_s + lam)  # Qxᵀ V Qs
                table[i, j] += zero_shot_accuracy(f_va @ core @ s_held, y_va) / len(folds)
    i, j = np.unravel_index(np.argmax(table), table.shape)
    scores = [{"gamma": g, "lam": lam_, "accuracy": float(table[a, b])}
              for a, g in enumerate(grid) for b, lam_ in enumerate(grid)]
    return float(grid[i]), float(grid[j]), float(table[i, j]), scores


@register
class Eszsl(ZeroShotMethod):
    name = "eszsl"
    description = ("zero-shot: a bilinear map from the source features to the class-attribute signatures, in "
                   "closed form (Romera-Paredes & Torr 2015)")
    Config = EszslConfig

    def train(self, source_model, data: AdaptationData, config: EszslConfig, settings, log) -> AdaptResult:
        features, labels, seen = seen_training_set(source_model, data)
        s_seen = signatures(data.class_attributes, seen)
        gamma, lam, score, _ = choose_gamma_lambda(features, labels, s_seen, config.grid, config.folds, settings.seed)
        gamma, lam = config.gamma or gamma, config.lam or lam
        v = fit_eszsl(features, labels, s_seen, gamma, lam)
        model = student_from(source_model, new_head=False, seed=settings.seed, data=data)
        weight = v @ signatures(data.class_attributes, data.target_classes).T  # (d, z_target): column c is V s_c
        with torch.no_grad():
            model.head.weight.copy_(torch.from_numpy(weight.T))
            model.head.bias.zero_()
        model.spec = target_spec(model.spec, data)
        how = ("γ, λ given" if config.gamma and config.lam else
               f"γ = {gamma:g}, λ = {lam:g} by accuracy on pseudo-unseen seen classes ({config.folds} folds)")
        record = {"gamma": gamma, "lam": lam, "pseudo_unseen_accuracy": score, "n_seen": len(seen)}
        if log is not None:
            log(1, {k: v_ for k, v_ in record.items() if isinstance(v_, float)})
        return AdaptResult(model=model.eval(), history=[record], checkpoint_criterion=f"closed form; {how}",
                           best_epoch=1, best_score=float("nan") if score is None else score)
