"""The similarity report: every distance between source and target as seen by a model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from transferlab.data import DOMAIN_ADAPTATION, Domain, label_spaces, stratified_subsample
from transferlab.data.loading import batches_in_order
from transferlab.progress import Progress, note
from transferlab.similarity.block_scores import block_transferability, suggested_depth
from transferlab.similarity.distances import coral_distance, proxy_a_distance
from transferlab.similarity.mmd import mmd2_statistic, mmd_test
from transferlab.similarity.plots import plot_embedding, plot_layer_profile, plot_null_distribution
from transferlab.similarity.source_free import source_free_section
from transferlab.similarity.transferability import h_score, leep, logme, nce


class SimilarityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    permutations: int = Field(200, ge=10)
    layer_permutations: int = Field(100, ge=10)
    max_samples: int = Field(1000, ge=20, description="per domain for the headline test")
    layer_max_samples: int = Field(500, ge=20, description="per domain for each layer")
    estimator: Literal["auto", "quadratic", "linear"] = "auto"
    bootstrap: int = Field(0, ge=0, description="0: asymptotic CI; >0: bootstrap resamples")
    dtype: Literal["float64", "float32"] = "float64"
    alpha: float = Field(0.05, gt=0, lt=1)
    seed: int = 0
    min_class_samples: int = Field(5, ge=2, description="per class and domain for class-conditional MMD")
    block_max_dim: int = Field(1024, ge=16, description="feature maps are pooled to at most this many values "
                                                        "before each block's transferability is scored")


@torch.no_grad()
def block_features(model: torch.nn.Module, x: np.ndarray, batch_size: int = 256,
                   flatten: bool = True) -> dict[str, np.ndarray]:
    """Activations at every entry of ``model.block_outputs``, in evaluation mode; flattened, or in
    their own shape (feature maps) with ``flatten=False``."""
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    for batch in batches_in_order(x, batch_size):
        outputs = model.block_outputs(batch, flatten=flatten)
        for name, value in outputs.items():
            parts.setdefault(name, []).append(value.numpy())
    return {name: np.concatenate(v) for name, v in parts.items()}


def _penultimate(names: list[str]) -> str:
    return names[-2]


def feature_space(layer: str) -> str:
    """Where the headline MMD² is measured, in words for every place that shows the number."""
    return f"the source model's '{layer}' features"


def similarity_report(model, source: Domain | None, target: Domain, target_labelled: Domain | None, *,
                      config: SimilarityConfig, plots_dir: Path | None = None) -> dict:
    """How far apart the domains are, as seen by ``model``; see the package doc for each number.

    With source data: the MMD test on the penultimate features, the per-layer profile, class-
    conditional MMD (over the classes both domains have), proxy A-distance and CORAL. Without
    (``source`` None): what the model carries instead (:mod:`transferlab.similarity.source_free`).
    With target labels, on either road: transferability of the source model (LEEP, NCE, H-score,
    LogME) and of each block, with the depth it suggests (:mod:`transferlab.similarity.block_scores`).
    PNGs go into ``plots_dir``."""
    start = time.perf_counter()
    spaces = label_spaces(source.classes if source is not None else model.classes, target.classes)
    tgt = stratified_subsample(target, config.max_samples, config.seed)
    ft = block_features(model, tgt.x)
    if source is None:
        report = {"source_data": False, **source_free_section(model, tgt.x, ft["logits"]), "plots": []}
    else:
        report = _shift_report(model, source, tgt, ft, target_labelled, spaces, config, plots_dir)
    report.update(road=spaces.road, label_spaces=spaces.to_dict(), feature_layer=_penultimate(list(ft)),
                  seed=config.seed, **_transferability(model, target_labelled, config))
    report["runtime_s"] = time.perf_counter() - start
    return report


def scorable(labelled: Domain | None) -> bool:
    """Whether labelled target samples can be scored for transferability: at least 2 classes."""
    return labelled is not None and len(labelled) > 0 and len(np.unique(labelled.y)) >= 2


def transferability_headline(features: np.ndarray, probs: np.ndarray, y: np.ndarray) -> dict:
    """LEEP, NCE (of the source head's class probabilities), H-score and LogME (of the features)."""
    return {"leep": leep(probs, y), "nce": nce(probs.argmax(1), y), "hscore": h_score(features, y),
            "logme": logme(features, y)}


def _transferability(model, labelled: Domain | None, config: SimilarityConfig) -> dict:
    if not scorable(labelled):
        return {"transferability": None, "block_transferability": None, "depth": None}
    note("transferability of the source model (LEEP, NCE, H-score, LogME, per block) on %d labelled target "
         "samples", len(labelled))
    fl = block_features(model, labelled.x, flatten=False)
    feature = _penultimate(list(fl))
    f = fl[feature].reshape(len(labelled), -1)
    probs = torch.softmax(torch.from_numpy(fl["logits"]), dim=1).numpy()
    headline = {**transferability_headline(f, probs, labelled.y), "n_labelled": len(labelled)}
    profile = block_transferability(fl, labelled.y, config.block_max_dim)
    return {"transferability": headline, "block_transferability": profile, "depth": suggested_depth(profile)}


def _class_conditional(fs: np.ndarray, source: Domain, cls_t_feat: np.ndarray, cls_t_y: np.ndarray,
                       target_classes: tuple[str, ...], labels_from: str, config: SimilarityConfig) -> dict:
    """MMD² per class both domains have (by name), from source labels and target labels or pseudo-labels."""
    shared = [c for c in target_classes if c in source.classes]
    per_class = {}
    for cname in shared:
        a = fs[source.y == source.classes.index(cname)]
        b = cls_t_feat[cls_t_y == target_classes.index(cname)]
        if len(a) >= config.min_class_samples and len(b) >= config.min_class_samples:
            per_class[cname] = mmd2_statistic(a, b, seed=config.seed)
    skipped = None
    if not shared:
        skipped = "source and target have no class in common (a new task), so there is no class to compare"
    elif len(shared) < len(target_classes):
        skipped = f"only the {len(shared)} classes both domains have are compared; the target's new classes have no source counterpart"
    return {"labels_from": labels_from, "per_class": per_class,
            "mean": float(np.mean(list(per_class.values()))) if per_class else None, "skipped": skipped}


def _shift_report(model, source: Domain, tgt: Domain, ft: dict, target_labelled: Domain | None, spaces,
                  config: SimilarityConfig, plots_dir: Path | None) -> dict:
    src = stratified_subsample(source, config.max_samples, config.seed)
    fs = block_features(model, src.x)
    names = list(fs)
    feature = _penultimate(names)
    # The permutations are computed together, in one pass over the kernel matrix: a line before and
    # after each test is the progress there is to report.
    note("MMD test on %s: %d source + %d target samples, %d permutations", feature_space(feature),
         len(fs[feature]), len(ft[feature]), config.permutations)
    head = mmd_test(fs[feature], ft[feature], n_permutations=config.permutations, estimator=config.estimator,
                    seed=config.seed, n_bootstrap=config.bootstrap, dtype=config.dtype)
    note("MMD test done in %.1f s: MMD² %.4g, p = %.3g", head.seconds, head.mmd2, head.p_value)

    n_layer = min(config.layer_max_samples, len(src), len(tgt))
    rng = np.random.default_rng(config.seed)
    ls, lt = rng.permutation(len(src))[:n_layer], rng.permutation(len(tgt))[:n_layer]
    layers = []
    profile = Progress("layer profile", len(names))
    for k, name in enumerate(names, start=1):
        if name == "logits" and spaces.road != DOMAIN_ADAPTATION:
            continue  # the source head's outputs are not the target's classes: nothing to align there
        r = head if name == feature and n_layer == len(src) == len(tgt) else mmd_test(
            fs[name][ls], ft[name][lt], n_permutations=config.layer_permutations, seed=config.seed, dtype=config.dtype)
        layers.append({"layer": name, "mmd2": r.mmd2, "p_value": r.p_value, "normalised": r.normalised,
                       "dim": int(fs[name].shape[1])})
        profile.update(k, f"layer {k}/{len(names)} '{name}'", f"MMD² {r.mmd2:.4g}, p = {r.p_value:.3g}")

    logits_t = ft["logits"]
    if target_labelled is not None and len(target_labelled) > 0:
        fl = block_features(model, target_labelled.x)
        cls_t_feat, cls_t_y, labels_from = fl[feature], target_labelled.y, "target-labelled"
    else:
        cls_t_feat, cls_t_y, labels_from = ft[feature], logits_t.argmax(1), "pseudo-labels"
    report = {
        "source_data": True,
        "mmd": {"mmd2": head.mmd2, "p_value": head.p_value, "ci": list(head.ci), "estimator": head.estimator,
                "ci_method": head.ci_method, "dtype": head.dtype, "seconds": head.seconds,
                "bandwidths": head.bandwidths, "n_source": head.n_x, "n_target": head.n_y,
                "permutations": head.n_permutations, "normalised": head.normalised,
                "significant": head.p_value < config.alpha, "alpha": config.alpha,
                # Which space these numbers are in: `transferlab similarity` measures input space.
                "features": feature, "feature_space": feature_space(feature)},
        "layers": layers,
        "class_conditional": _class_conditional(fs[feature], src, cls_t_feat, cls_t_y, tuple(tgt.classes),
                                                labels_from, config),
        "a_distance": proxy_a_distance(fs[feature], ft[feature], seed=config.seed),
        "coral": coral_distance(fs[feature], ft[feature]),
        "plots": [],
    }
    if plots_dir is not None:
        note("plots: layer profile, permutation null, t-SNE of the features")
        plots_dir = Path(plots_dir)
        # On a new task the target's predicted "classes" are source classes: colour by domain only.
        colour = logits_t.argmax(1) if spaces.road == DOMAIN_ADAPTATION else np.zeros(len(tgt), dtype=np.int64)
        report["plots"] = [
            plot_layer_profile(layers, plots_dir / "layer_profile.png", config.alpha),
            plot_null_distribution(head.null, head.mmd2, head.p_value, plots_dir / "null_distribution.png",
                                   feature_space(feature)),
            plot_embedding(fs[feature], ft[feature], src.y, colour, plots_dir / "embedding.png", seed=config.seed),
        ]
    return report
