"""Pictures of domain distance (matplotlib, drawn without touching the global backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def _save(fig: Figure, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path.name


def plot_layer_profile(layers: list[dict], path: Path, alpha: float = 0.05) -> str:
    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.subplots()
    names = [l["layer"] for l in layers]
    values = [l["normalised"] for l in layers]
    colours = ["tab:red" if l["p_value"] < alpha else "tab:grey" for l in layers]
    ax.bar(range(len(names)), values, color=colours)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_ylabel("normalised MMD² (0 = same, 1 = disjoint)")
    ax.set_title(f"Source vs target distance per layer (red: p < {alpha})")
    return _save(fig, path)


def plot_null_distribution(null: np.ndarray, observed: float, p_value: float, path: Path,
                           space: str | None = None) -> str:
    fig = Figure(figsize=(6, 3.4))
    ax = fig.subplots()
    ax.hist(null, bins=30, color="tab:blue", alpha=0.7, label="permutation null")
    ax.axvline(observed, color="tab:red", lw=2, label=f"observed MMD² (p = {p_value:.3g})")
    ax.set_xlabel("MMD²")
    ax.legend()
    ax.set_title("Permutation test" + (f" on {space}" if space else ""))
    return _save(fig, path)


def plot_embedding(source: np.ndarray, target: np.ndarray, source_y: np.ndarray, target_y: np.ndarray,
                   path: Path, seed: int = 0, max_points: int = 500) -> str:
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    s = rng.permutation(len(source))[:max_points]
    t = rng.permutation(len(target))[:max_points]
    data = np.vstack([source[s], target[t]]).astype(np.float64)
    emb = TSNE(n_components=2, random_state=seed, init="pca", perplexity=min(30, len(data) // 4)).fit_transform(data)
    fig = Figure(figsize=(11, 4.8))
    ax_domain, ax_class = fig.subplots(1, 2)
    ns = len(s)
    ax_domain.scatter(*emb[:ns].T, s=6, c="tab:blue", label="source", alpha=0.6)
    ax_domain.scatter(*emb[ns:].T, s=6, c="tab:orange", label="target", alpha=0.6)
    ax_domain.legend()
    ax_domain.set_title("t-SNE of penultimate features, by domain")
    labels = np.r_[source_y[s], target_y[t]]
    markers = np.r_[np.zeros(ns), np.ones(len(t))]
    for m, marker in ((0, "o"), (1, "x")):
        sel = markers == m
        ax_class.scatter(*emb[sel].T, s=8, c=labels[sel], cmap="tab10", marker=marker, alpha=0.7, vmin=0, vmax=9)
    ax_class.set_title("by class (o source, x target)")
    return _save(fig, path)
