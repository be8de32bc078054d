"""PNG figures for the evaluation report: confusion matrix and reliability diagram.

Figures are drawn on an Agg canvas created here (``matplotlib.figure.Figure`` +
``FigureCanvasAgg``), so no global backend is switched and nothing needs a display.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from transferlab.evaluation.metrics import reliability_bins


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
    return path


def plot_confusion_matrix(
    matrix: np.ndarray | list,
    classes: tuple[str, ...] | list[str],
    path: str | Path,
    *,
    title: str = "Confusion matrix",
    normalise: bool = True,
) -> Path:
    """Rows are true classes; cells show row-normalised rates (and counts when small enough)."""
    cm = np.asarray(matrix, dtype=np.float64)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalise else cm
    n = len(classes)
    size = max(3.5, 0.45 * n + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), [str(c) for c in classes], rotation=45 if n > 10 else 0)
    ax.set_yticks(range(n), [str(c) for c in classes])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                text = f"{int(cm[i, j])}" if cm[i, j] else ""
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    return _save(fig, path)


def plot_reliability_diagram(
    probs: np.ndarray,
    y_true: np.ndarray,
    path: str | Path,
    *,
    n_bins: int = 15,
    title: str = "Reliability diagram",
) -> Path:
    """Accuracy per confidence bin against the diagonal of perfect calibration, ECE in the title."""
    bins = reliability_bins(probs, y_true, n_bins)
    centres = (bins.edges[:-1] + bins.edges[1:]) / 2
    width = 1.0 / n_bins
    used = bins.counts > 0
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(centres[used], bins.accuracy[used], width=width, edgecolor="black",
           color="#4c72b0", label="accuracy")
    ax.bar(centres[used], bins.confidence[used] - bins.accuracy[used], bottom=bins.accuracy[used],
           width=width, color="#dd8452", alpha=0.5, edgecolor="#dd8452", label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title} (ECE {bins.ece:.3f})")
    ax.legend(loc="upper left", fontsize=7)
    return _save(fig, path)
