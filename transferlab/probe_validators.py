"""More label-free validators: prediction entropy, MixVal, reverse validation, source accuracy + IM.

Same contract as :mod:`transferlab.validators`: no target label is read, every score is returned
"higher is better" (a "lower is better" quantity is negated and says so).

Prediction entropy (SKADA-Bench's deep "Entropy" scorer; Morerio et al. 2018). With
p̂ᵢ = softmax(zᵢ) on N target samples,

    ENT = (1/N) Σᵢ H(p̂ᵢ),        H(p) = −Σ_c p_c log p_c

**lower is better** (confident target predictions); the score is −ENT. Blind spot: a model that
puts every sample confidently in one class scores perfectly (IM's diversity term guards that).

MixVal (Hu et al., "Mixed Samples as Probes for Unsupervised Model Selection in Domain
Adaptation", NeurIPS 2023). Pseudo-labels ŷᵢ = argmax p̂ᵢ. Pairs (i, j) of target samples are
mixed with a fixed λ = 0.55 > ½ (the paper's inference-time value), so that sample i dominates:

    x̃ᵢⱼ = λ xᵢ + (1 − λ) xⱼ,        ỹᵢⱼ = argmax(λ e(ŷᵢ) + (1 − λ) e(ŷⱼ)) = ŷᵢ

and the probe score is the model's accuracy on the mixed samples against ỹ:

    ICE = (1/|P|) Σ_(i,j)∈P 1[argmax f(x̃ᵢⱼ) = ŷᵢ]

*Inter-cluster* pairs (ŷᵢ ≠ ŷⱼ) probe the decision boundary (does it lie between the clusters, so
that the dominant side wins?); *intra-cluster* pairs (ŷᵢ = ŷⱼ) probe density (is the space
between two members of a cluster still that class?). **Higher is better.** The paper ranks
candidates by each probe and combines the ranks; one model has no pool to rank in, so
``mixval`` here is the mean of the two accuracies (``mixval_inter`` / ``mixval_intra`` are kept;
the pool-level rank combination is :func:`transferlab.selection.mean_rank_scores` over them).
Pairs: a seeded permutation for inter-cluster pairs (kept where the pseudo-labels differ), a
seeded shuffle inside each pseudo-class for intra-cluster pairs.

Reverse (circular) validation (Zhong et al., ECML-PKDD 2010; Ganin et al., JMLR 2016 §5.1.2).
Label the target with the model (pseudo-labels ŷ), train a *reverse* classifier g on the target
with ŷ, and measure it where true labels exist, on labelled source validation data:

    RV = (1/|V|) Σ_(x,y)∈V 1[g(φ(x)) = y],        g = argmin_g Σ_target ℓ(g(φ(xₜ)), ŷₜ)

**higher is better**. A model whose target labelling is consistent with the source classes gives
pseudo-labels from which the source can be recovered. Here g is linear discriminant analysis
(shared covariance with Ledoit-Wolf shrinkage, closed form) over the model's standardised
features φ. Ganin et al. retrain the whole network; a linear g on φ keeps the probe to one cheap
fit per model, at the price of judging the labels through the model's own representation. LDA,
not logistic regression: an L-BFGS logistic fit on 500-d LeNet features took ~14 s per model on
one core, LDA a fraction of a second.

Source-validation accuracy with IM (advice of the pytorch-adapt maintainers, Musgrave et al.,
"Three new validators and a large-scale benchmark ranking for UDA", 2022: source accuracy alone
ignores the target, IM alone rewards confident mistakes, and they fail on different models):

    SRC+IM = ½ (acc_src_val + IM / log C)

Both terms lie in [0, 1] (IM ∈ [0, log C]), so the normalised sum weighs them equally without
a pool of candidates. A sum, not a mean of ranks: it is a property of one model, so it can also
choose a checkpoint during training, where there is no pool to rank in. **Higher is better.**
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.neighbors import NearestCentroid
from sklearn.preprocessing import StandardScaler

from transferlab.errors import DataError
from transferlab.validators import _array, _as_probs, _entropy, information_maximization

PROBE_VALIDATORS = ("entropy", "mixval", "reverse", "srcacc_im")
MIXVAL_LAMBDA = 0.55  # the paper's fixed inference-time mixing weight (> 1/2: the first sample dominates)


def prediction_entropy(values: object, *, from_logits: bool = True) -> float:
    """ENT = mean H(p̂ᵢ) over target samples; **lower is better** (negate it to rank)."""
    return float(_entropy(_as_probs(values, from_logits), axis=1).mean())


def mixval_pairs(pseudo: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(inter-cluster pairs, intra-cluster pairs) as (P, 2) index arrays; the first index dominates.

    Inter: i with π(i) for a seeded permutation π, kept where the pseudo-labels differ.
    Intra: inside each pseudo-class, i with the next sample of a seeded shuffle (a class of one has none)."""
    perm = rng.permutation(len(pseudo))
    inter = np.stack([np.arange(len(pseudo)), perm], axis=1)
    inter = inter[pseudo[inter[:, 0]] != pseudo[inter[:, 1]]]
    intra = []
    for c in np.unique(pseudo):
        members = rng.permutation(np.flatnonzero(pseudo == c))
        if len(members) > 1:
            intra.append(np.stack([members, np.roll(members, -1)], axis=1))
    intra_arr = np.concatenate(intra) if intra else np.zeros((0, 2), dtype=int)
    return inter, intra_arr


def mixval(
    predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, *, lam: float = MIXVAL_LAMBDA, seed: int = 0,
    logits: np.ndarray | None = None,
) -> dict[str, float]:
    """MixVal probes of a classifier ``predict(x) -> logits`` on target inputs ``x`` (``logits``:
    ``predict(x)`` when the caller already has it, saving that pass).

    Returns {"mixval_inter", "mixval_intra", "mixval"}; a probe with no pairs (every pseudo-label
    the same, or all different) scores 0 for inter (no boundary to find: the collapse MixVal is
    meant to expose) and 1 for intra (nothing contradicts the clusters). Higher is better."""
    if not 0.5 < lam < 1:
        raise DataError(f"the MixVal mixing weight must be in (0.5, 1), got {lam}")
    if len(x) < 2:
        raise DataError("MixVal needs at least two target samples")
    pseudo = np.asarray(predict(x) if logits is None else logits).argmax(1)
    inter, intra = mixval_pairs(pseudo, np.random.default_rng(seed))

    def probe(pairs: np.ndarray, empty: float) -> float:
        if len(pairs) == 0:
            return empty
        mixed = (lam * x[pairs[:, 0]] + (1 - lam) * x[pairs[:, 1]]).astype(x.dtype)
        return float((np.asarray(predict(mixed)).argmax(1) == pseudo[pairs[:, 0]]).mean())

    scores = {"mixval_inter": probe(inter, 0.0), "mixval_intra": probe(intra, 1.0)}
    scores["mixval"] = 0.5 * (scores["mixval_inter"] + scores["mixval_intra"])
    return scores


def reverse_validation(
    target_features: object, target_logits: object, source_val_features: object, source_val_y: object,
) -> float:
    """RV: accuracy on labelled source validation of a linear (LDA) classifier fitted to the target's
    pseudo-labels (argmax of ``target_logits``) over the model's features; higher is better.

    With a single pseudo-class no classifier can be fitted: g predicts that class everywhere."""
    ft = _array(target_features, "target features", 2)
    zt = _array(target_logits, "target logits", 2)
    fv = _array(source_val_features, "source validation features", 2)
    yv = np.asarray(source_val_y)
    if ft.shape[1] != fv.shape[1] or len(ft) != len(zt) or len(fv) != len(yv):
        raise DataError("reverse validation: feature sizes or sample counts of its inputs disagree")
    pseudo = zt.argmax(1)
    if len(np.unique(pseudo)) < 2:
        return float((yv == pseudo[0]).mean())
    scaler = StandardScaler().fit(ft)
    # LDA needs more samples than classes; with fewer, the class means alone (nearest centroid).
    clf = (LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto") if len(ft) > len(np.unique(pseudo))
           else NearestCentroid())
    clf.fit(scaler.transform(ft), pseudo)
    return float((clf.predict(scaler.transform(fv)) == yv).mean())


def source_accuracy_with_im(source_val_accuracy: float, im: float, n_classes: int) -> float:
    """SRC+IM = ½ (source-validation accuracy + IM / log C), in [0, 1]; higher is better."""
    if n_classes < 2:
        raise DataError(f"SRC+IM needs at least two classes, got {n_classes}")
    if not 0 <= source_val_accuracy <= 1:
        raise DataError(f"source validation accuracy must be in [0, 1], got {source_val_accuracy}")
    return 0.5 * (source_val_accuracy + im / math.log(n_classes))


def probe_scores(
    predict: Callable[[np.ndarray], np.ndarray], target_x: np.ndarray, target_logits: np.ndarray, target_features: np.ndarray | None,
    source_val_features: np.ndarray | None, source_val_logits: np.ndarray | None,
    source_val_y: np.ndarray | None, *, seed: int = 0, validators: Collection[str] = PROBE_VALIDATORS,
) -> dict[str, float]:
    """The validators of this module named in ``validators`` (all by default), "higher is better"
    ("entropy" is −ENT); the two that need labelled source data ("reverse", "srcacc_im") only when
    it is given."""
    scores: dict[str, float] = {}
    if "entropy" in validators:
        scores["entropy"] = -prediction_entropy(target_logits)
    if "mixval" in validators:
        scores.update(mixval(predict, target_x, seed=seed, logits=target_logits))
    if source_val_features is not None and target_features is not None:
        yv = np.asarray(source_val_y)
        if "reverse" in validators:
            scores["reverse"] = reverse_validation(target_features, target_logits, source_val_features, yv)
        if "srcacc_im" in validators:
            acc = float((np.asarray(source_val_logits).argmax(1) == yv).mean())
            scores["srcacc_im"] = source_accuracy_with_im(
                acc, information_maximization(target_logits), np.asarray(target_logits).shape[1])
    return scores

