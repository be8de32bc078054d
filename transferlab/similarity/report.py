"""The similarity report: every distance between source and target as seen by a model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from transferlab.data import Domain, stratified_subsample
from transferlab.similarity.distances import coral_distance, proxy_a_distance
from transferlab.similarity.mmd import mmd2_statistic, mmd_test
from transferlab.similarity.plots import plot_embedding, plot_layer_profile, plot_null_distribution
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


@torch.no_grad()
def block_features(model: torch.nn.Module, x: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
    """Flattened activations at every entry of ``model.block_outputs``, in evaluation mode."""
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(x), batch_size):
        for name, value in model.block_outputs(torch.from_numpy(x[start:start + batch_size])).items():
            parts.setdefault(name, []).append(value.numpy())
    return {name: np.concatenate(v) for name, v in parts.items()}


def _penultimate(names: list[str]) -> str:
    return names[-2]


def similarity_report(model, source: Domain, target: Domain, target_labelled: Domain | None, *,
                      config: SimilarityConfig, plots_dir: Path | None = None) -> dict:
    """MMD test on the model's penultimate features, the per-layer profile, class-conditional MMD,
    proxy A-distance, CORAL and (with target labels) transferability scores; PNGs into ``plots_dir``."""
    start = time.perf_counter()
    src = stratified_subsample(source, config.max_samples, config.seed)
    tgt = stratified_subsample(target, config.max_samples, config.seed)
    fs, ft = block_features(model, src.x), block_features(model, tgt.x)
    names = list(fs)
    feature = _penultimate(names)
    head = mmd_test(fs[feature], ft[feature], n_permutations=config.permutations, estimator=config.estimator,
                    seed=config.seed, n_bootstrap=config.bootstrap, dtype=config.dtype)

    n_layer = min(config.layer_max_samples, len(src), len(tgt))
    rng = np.random.default_rng(config.seed)
    ls, lt = rng.permutation(len(src))[:n_layer], rng.permutation(len(tgt))[:n_layer]
    layers = []
    for name in names:
        r = head if name == feature and n_layer == len(src) == len(tgt) else mmd_test(
            fs[name][ls], ft[name][lt], n_permutations=config.layer_permutations, seed=config.seed, dtype=config.dtype)
        layers.append({"layer": name, "mmd2": r.mmd2, "p_value": r.p_value, "normalised": r.normalised,
                       "dim": int(fs[name].shape[1])})

    logits_t = ft["logits"]
    labelled = target_labelled is not None and len(target_labelled) > 0
    if labelled:
        fl = block_features(model, target_labelled.x)
        cls_t_feat, cls_t_y, labels_from = fl[feature], target_labelled.y, "target-labelled"
    else:
        cls_t_feat, cls_t_y, labels_from = ft[feature], logits_t.argmax(1), "pseudo-labels"
    per_class = {}
    for c, cname in enumerate(source.classes):
        a, b = fs[feature][src.y == c], cls_t_feat[cls_t_y == c]
        if len(a) >= config.min_class_samples and len(b) >= config.min_class_samples:
            per_class[cname] = mmd2_statistic(a, b, seed=config.seed)

    transferability = None
    if labelled and len(np.unique(target_labelled.y)) > 1:
        probs = torch.softmax(torch.from_numpy(fl["logits"]), dim=1).numpy()
        transferability = {"leep": leep(probs, target_labelled.y), "nce": nce(probs.argmax(1), target_labelled.y),
                           "hscore": h_score(fl[feature], target_labelled.y),
                           "logme": logme(fl[feature], target_labelled.y), "n_labelled": len(target_labelled)}

    report = {
        "feature_layer": feature,
        "mmd": {"mmd2": head.mmd2, "p_value": head.p_value, "ci": list(head.ci), "estimator": head.estimator,
                "ci_method": head.ci_method, "dtype": head.dtype, "seconds": head.seconds,
                "bandwidths": head.bandwidths, "n_source": head.n_x, "n_target": head.n_y,
                "permutations": head.n_permutations, "normalised": head.normalised,
                "significant": head.p_value < config.alpha, "alpha": config.alpha},
        "layers": layers,
        "class_conditional": {"labels_from": labels_from, "per_class": per_class,
                              "mean": float(np.mean(list(per_class.values()))) if per_class else None},
        "a_distance": proxy_a_distance(fs[feature], ft[feature], seed=config.seed),
        "coral": coral_distance(fs[feature], ft[feature]),
        "transferability": transferability,
        "seed": config.seed,
        "plots": [],
    }
    if plots_dir is not None:
        plots_dir = Path(plots_dir)
        report["plots"] = [
            plot_layer_profile(layers, plots_dir / "layer_profile.png", config.alpha),
            plot_null_distribution(head.null, head.mmd2, head.p_value, plots_dir / "null_distribution.png"),
            plot_embedding(fs[feature], ft[feature], src.y, logits_t.argmax(1), plots_dir / "embedding.png",
                           seed=config.seed),
        ]
    report["runtime_s"] = time.perf_counter() - start
    return report
