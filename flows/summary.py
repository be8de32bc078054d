"""What `transferlab run` prints at the end: the answer, and where to look."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.paths import EVALUATION, SELECTION, SIMILARITY
from transferlab.evaluation.report import champion_sentence, holdout_sentence


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _pct(value) -> str:
    return "-" if value is None else f"{100 * float(value):.2f} %"


def summary_lines(project: Path, stages: dict[str, str] | None = None) -> list[str]:
    evaluation = _load(project / EVALUATION)
    selection = _load(project / SELECTION)
    mmd = _load(project / SIMILARITY).get("mmd") or {}
    models = evaluation.get("models", {})
    sentence = ((evaluation.get("gain") or {}).get("verdict") or {}).get("sentence")
    part = " (report part)" if evaluation.get("promotion") else ""
    lines = ["", "transferlab: pipeline finished", ""]
    if stages:
        lines.append("stages: " + ", ".join(f"{k} {v}" for k, v in stages.items()))
    lines += [
        f"chosen method          : {selection.get('method', '-')}",
        f"road                   : {evaluation.get('road', '-')}"
        + (f" ({(evaluation.get('label_spaces') or {}).get('sentence')})" if evaluation.get("label_spaces") else ""),
        f"target test accuracy   : adapted{part} {_pct(evaluation.get('adapted_accuracy'))}"
        + "".join(f"  vs {name} {_pct(m.get('accuracy_mean'))}" for name, m in models.items()
                  if m.get("role") == "baseline"),
        f"transfer gain          : {evaluation.get('transfer_gain', 0) * 100:+.2f} points over "
        f"{evaluation.get('baseline', 'the best baseline')} "
        f"(CI {', '.join(f'{100 * c:+.2f}' for c in evaluation.get('transfer_gain_ci', []))})"
        + ("  NEGATIVE TRANSFER" if evaluation.get("negative_transfer") else ""),
        "domain distance        : " + (f"MMD² = {mmd['mmd2']:.4g} on {mmd.get('feature_space', 'the source model features')}, "
                                          f"p = {mmd['p_value']:.3g}" if mmd else "not measured (no source data)"),
        f"verdict                : {evaluation.get('verdict', '-')}" + (f"  ({sentence})" if sentence else ""),
        f"MLflow model version   : {evaluation.get('registered_model', '-')} v{evaluation.get('adapted_version', '-')}",
        # The same sentence as the report page and the Prefect artifact (transferlab.evaluation.report).
        f"champion               : {champion_sentence(evaluation) or '-'}",
    ]
    if holdout_sentence(evaluation):
        lines.append(f"promotion hold-out     : {holdout_sentence(evaluation).removeprefix('Promotion hold-out: ')}")
    lines += [
        "",
        f"reports                : {project / 'reports/evaluation/evaluation.html'} (and evaluation.md)",
        *(f"{name:<23}: {url}" for name, url in (evaluation.get("links") or {}).items()),
        "MLflow UI              : make ui   (or: mlflow ui --backend-store-uri sqlite:///mlflow.db), "
        "then http://127.0.0.1:5000",
        "Prefect UI             : prefect server start   (http://127.0.0.1:4200), then "
        "PREFECT_API_URL=http://127.0.0.1:4200/api transferlab serve",
    ]
    return lines


def print_summary(project: Path, stages: dict[str, str] | None = None) -> None:
    print("\n".join(summary_lines(Path(project), stages)))
