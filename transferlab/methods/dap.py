"""``dap``: direct attribute prediction (Lampert, Nickisch & Harmeling 2009; PAMI 2014).

One probabilistic classifier per attribute m is trained on the source features of the seen
classes, each sample labelled with its class's value a_m^{y}: here a logistic regression,
p(a_m = 1 | x) = σ(w_mᵀ f(x) + b_m) (the paper uses Platt-scaled SVMs for the same posterior).
A class c, seen or not, is scored by the attribute posteriors of its signature a^c, divided by the
attribute priors (the paper's eq. 2 in log space, the class prior taken uniform):

    log score_c(x) = Σ_m log p(a_m = a_m^c | x) − Σ_m log p(a_m = a_m^c),
    log p(a_m = a | x) = a log σ(z_m) + (1 − a) log σ(−z_m),
    p(a_m = 1) = π_m = mean of a_m^c over the seen classes (the paper's factorial prior),

and x is assigned argmax_c. That is a linear head on [log σ(z), log σ(−z)]
(:class:`transferlab.models.classifier.AttributeLogProbs`): W_c = [a^c, 1 − a^c] and
b_c = −Σ_m (a_m^c log π_m + (1 − a_m^c) log(1 − π_m)), so the model is saved and loaded like any other.

DAP needs binary attributes. A continuous table is binarised at each attribute's mean over the
classes in use (Lampert et al. threshold their continuous AwA matrix the same way, at its mean).
An attribute constant over the seen classes cannot be learnt: its column of W and its prior term are
0, so it does not score any class (ESZSL handles such a column through λ instead).
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field

from transferlab.data.attributes import binarise
from transferlab.methods.base import AdaptationData, MethodConfig
from transferlab.methods.heads import target_spec
from transferlab.methods.registry import register
from transferlab.methods.zero_shot import (
    ZeroShotMethod,
    seen_training_set,
    seen_unseen,
    signatures,
)
from transferlab.models.classifier import attach_attribute_block
from transferlab.training import AdaptResult, copy_model


class DapConfig(MethodConfig):
    c: float = Field(1.0, gt=0, description="inverse L2 strength of each attribute's logistic regression (on "
                                            "standardised features)")
    max_iter: int = Field(500, ge=10, description="iterations of each logistic regression's solver")


def dap_log_scores(log_p1: np.ndarray, log_p0: np.ndarray, signatures_: np.ndarray, prior: np.ndarray,
                   mask: np.ndarray | None = None) -> np.ndarray:
    """Σ_m mask_m [a_m^c log p(a_m=1|x) + (1−a_m^c) log p(a_m=0|x) − a_m^c log π_m − (1−a_m^c) log(1−π_m)],
    shape (n, z), from ``log_p1``/``log_p0`` (n, M), binary ``signatures_`` (z, M) and the priors π (M,)."""
    w, b = dap_head(signatures_, prior, mask)
    return np.concatenate([log_p1, log_p0], axis=1) @ w.T + b


def dap_head(signatures_: np.ndarray, prior: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(W (z, 2M), b (z,)) of the DAP head on [log σ(z), log σ(−z)]; ``mask`` (M,) switches attributes off."""
    mask = np.ones(signatures_.shape[1]) if mask is None else mask.astype(np.float64)
    a = signatures_ * mask
    not_a = (1.0 - signatures_) * mask
    safe = np.clip(prior, 1e-12, 1 - 1e-12)  # a masked attribute may have π ∈ {0, 1}; its terms are 0 anyway
    bias = -(a @ np.log(safe) + not_a @ np.log(1.0 - safe))
    return np.concatenate([a, not_a], axis=1), bias


def fit_attribute_classifiers(features: np.ndarray, targets: np.ndarray, c: float, max_iter: int
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W (M, d), b (M,), mask (M,)): one logistic regression per attribute column of ``targets`` (n, M),
    on standardised features, folded back into weights on the raw features; mask is 0 where the
    attribute is constant over the samples (nothing to learn; W and b are 0 there)."""
    from sklearn.linear_model import LogisticRegression

    mean, std = features.mean(0), features.std(0)
    std = np.where(std > 1e-12, std, 1.0)
    z = (features - mean) / std
    n_attr, d = targets.shape[1], features.shape[1]
    w, b, mask = np.zeros((n_attr, d)), np.zeros(n_attr), np.zeros(n_attr)
    for m in range(n_attr):
        if np.ptp(targets[:, m]) == 0:
            continue
        clf = LogisticRegression(C=c, max_iter=max_iter).fit(z, targets[:, m].astype(int))
        w[m] = clf.coef_[0] / std          # wᵀ (f − μ)/σ + b0 = (w/σ)ᵀ f + (b0 − (w/σ)ᵀ μ)
        b[m] = clf.intercept_[0] - w[m] @ mean
        mask[m] = 1.0
    return w, b, mask


@register
class Dap(ZeroShotMethod):
    name = "dap"
    description = ("zero-shot: per-attribute classifiers on the source features, classes scored by their "
                   "attribute posteriors over priors (Lampert et al. 2009)")
    Config = DapConfig

    def train(self, source_model, data: AdaptationData, config: DapConfig, settings, log) -> AdaptResult:
        features, labels, seen = seen_training_set(source_model, data)
        in_use = (*seen, *seen_unseen(data)[1])
        binary = dict(zip(in_use, binarise(signatures(data.class_attributes, in_use))))
        s_seen = np.stack([binary[c] for c in seen])
        w, b, mask = fit_attribute_classifiers(features, s_seen[labels], config.c, config.max_iter)
        prior = s_seen.mean(0)
        head_w, head_b = dap_head(np.stack([binary[c] for c in data.target_classes]), prior, mask)
        model = copy_model(source_model)
        model.spec = target_spec(model.spec, data).model_copy(update={"attribute_block": len(prior)})
        model.head = torch.nn.Linear(model.head.in_features, data.n_target_classes)
        attach_attribute_block(model, len(prior))
        with torch.no_grad():
            model.blocks[-1].linear.weight.copy_(torch.from_numpy(w))
            model.blocks[-1].linear.bias.copy_(torch.from_numpy(b))
            model.head.weight.copy_(torch.from_numpy(head_w))
            model.head.bias.copy_(torch.from_numpy(head_b))
        record = {"n_seen": len(seen), "attributes_learnt": int(mask.sum()), "attributes": len(mask)}
        if log is not None:
            log(1, {k: float(v) for k, v in record.items()})
        skipped = len(mask) - int(mask.sum())
        return AdaptResult(model=model.eval(), history=[record],
                           checkpoint_criterion="convex fit (no checkpoint)" +
                                                (f"; {skipped} attribute(s) constant over the seen classes unused"
                                                 if skipped else ""),
                           best_epoch=1)
