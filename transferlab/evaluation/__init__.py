"""Held-out evaluation: metrics, transfer gain with a bootstrap CI, the negative-transfer verdict,
plots and the ship/no-ship report. Pure functions over labels, predictions and probabilities."""

from transferlab.evaluation.comparison import (
    BootstrapResult,
    TransferVerdict,
    negative_transfer_verdict,
    paired_bootstrap_difference,
    selection_regret,
    summarise_runs,
    transfer_gain,
)
from transferlab.evaluation.metrics import (
    ReliabilityBins,
    accuracy,
    classification_metrics,
    confusion_matrix,
    expected_calibration_error,
    macro_f1,
    per_class_accuracy,
    reliability_bins,
)
from transferlab.evaluation.plots import plot_confusion_matrix, plot_reliability_diagram
from transferlab.evaluation.promotion import Promotion, Rival, promotion_decision, promotion_split
from transferlab.evaluation.report import render_evaluation_html, render_evaluation_markdown, render_summary_markdown
from transferlab.evaluation.summary import summarise_model

__all__ = [
    "BootstrapResult",
    "Promotion",
    "ReliabilityBins",
    "Rival",
    "TransferVerdict",
    "accuracy",
    "classification_metrics",
    "confusion_matrix",
    "expected_calibration_error",
    "macro_f1",
    "negative_transfer_verdict",
    "paired_bootstrap_difference",
    "per_class_accuracy",
    "plot_confusion_matrix",
    "plot_reliability_diagram",
    "promotion_decision",
    "promotion_split",
    "reliability_bins",
    "render_evaluation_html",
    "render_evaluation_markdown",
    "render_summary_markdown",
    "selection_regret",
    "summarise_model",
    "summarise_runs",
    "transfer_gain",
]
