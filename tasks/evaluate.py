"""evaluate: the only stage that reads the target test split. Scores the adapted model and the
baselines on it, computes the transfer gain with a bootstrap CI and the negative-transfer verdict,
writes the report a person reads before shipping, and moves the MLflow ``champion`` alias only
when the adapted version beats the baselines and the current champion on the same test split."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch

from transferlab.config import PipelineParams
from transferlab.data import DOMAIN_ADAPTATION, Domain
from transferlab.data.loading import batches_in_order
from transferlab.evaluation import (plot_confusion_matrix, plot_reliability_diagram, render_evaluation_html,
                                    render_evaluation_markdown, selection_regret, summarise_model, transfer_gain)
from transferlab.models import load_model
from tasks import headline, timing, tracking
from tasks.adapt import fit_method, seed_dir
from tasks.common import adapt_seeds, train_settings
from tasks.data_files import adaptation_data, target_test
from tasks.io import atomic_dir, input_hash, read_json, write_json
from tasks.paths import (ADAPTED_MODEL, BASELINE_MODELS, EVALUATION, EVALUATION_DIR, MANIFEST, PREPARED_SOURCE,
                         PREPARED_TARGET, PREPARED_TEST, SELECTION, SOURCE_MODEL)

NAME = "evaluate"
DEPS = [SOURCE_MODEL, ADAPTED_MODEL, BASELINE_MODELS, PREPARED_TEST, SELECTION, PREPARED_SOURCE, PREPARED_TARGET]
CHAMPION = "champion"


@torch.no_grad()
def predict_proba(model: torch.nn.Module, domain: Domain, batch_size: int = 512) -> np.ndarray:
    model.eval()
    out = [torch.softmax(model(batch), dim=1) for batch in batches_in_order(domain.x, batch_size)]
    return torch.cat(out).numpy().astype(np.float64)


def _models(root: Path) -> dict[str, tuple[str, list[torch.nn.Module]]]:
    """name -> (role, one model per training seed): the adapted model, then the baselines
    (source-only on the domain-adaptation road: the pretrained model, a single run)."""
    adapted = read_json(root / ADAPTED_MODEL / MANIFEST, "the adapted model's manifest")
    seeds = adapted.get("seeds") or [None]

    def per_seed(folder: Path) -> list[torch.nn.Module]:
        return [load_model(folder if i == 0 else seed_dir(folder, seed)) for i, seed in enumerate(seeds)]

    models = {adapted["method"]: ("chosen", per_seed(root / ADAPTED_MODEL))}
    # The source model as it is is a baseline only where its head speaks the target's classes.
    if "source-only" not in models and adapted.get("road", DOMAIN_ADAPTATION) == DOMAIN_ADAPTATION:
        models["source-only"] = ("baseline", [load_model(root / SOURCE_MODEL)])
    baselines = read_json(root / BASELINE_MODELS / MANIFEST, "the baselines' manifest")
    for name in baselines.get("baselines", []):
        if name not in models:
            models[name] = ("baseline", per_seed(root / BASELINE_MODELS / name))
    return models


def audit_candidates(params: PipelineParams, root: Path, selection: dict, scored: dict[str, float],
                     test: Domain) -> dict:
    """Oracle audit: train every other eligible candidate of the selection (first training seed,
    same settings as adapt) and score it on the test split. Nothing upstream reads the result."""

    names = [c["method"] for c in selection.get("candidates", []) if c.get("eligible", True)]
    accuracies = dict(scored)
    source_model = load_model(root / SOURCE_MODEL)
    data = adaptation_data(root)
    settings = train_settings(params, params.adapt.train, seed=adapt_seeds(params)[0])
    for name in names:
        if name in accuracies:
            continue
        raw = params.adapt.methods.get(name, {})
        with timing.work():
            model = fit_method(name, raw, source_model, data, settings).model
            accuracies[name] = float((predict_proba(model, test).argmax(1) == test.y).mean())
    return {**selection_regret(accuracies, selection["method"]), "seed": settings.seed,
            "candidates_trained": [n for n in accuracies if n not in scored]}


def champion_decision(client, name: str, version: int | None, accuracy: float, beats_baselines: bool,
                      test_hash: str, score_version, classes: list[str] | None = None) -> dict:
    """Whether ``version`` takes the champion alias, and why (or why not). A champion that predicts
    other classes (it was registered for another task) is no rival on this test split."""
    if version is None:
        return {"moved": False, "version": None, "reason": "model registration is off (mlflow.register_models: false)"}
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # noqa: BLE001 - MLflow raises a generic error when the alias is unset
        current = None
    if not beats_baselines:
        return {"moved": False, "version": current.version if current else None,
                "reason": "the adapted model did not beat every baseline on the target test split"}
    tags = (current.tags or {}) if current is not None else {}
    if current is not None and classes is not None and "classes" in tags and json.loads(tags["classes"]) != classes:
        return {"moved": True, "version": str(version),
                "reason": f"it beats every baseline on the target test split; the previous champion v{current.version} "
                          "predicts other classes (another task), so it is no rival here"}
    if current is not None and int(current.version) != version:
        if tags.get("test_split_sha256") == test_hash and "test_accuracy" in tags:
            champion_acc, how = float(tags["test_accuracy"]), "recorded on this same test split"
        else:
            champion_acc, how = score_version(current.version), "re-scored on this test split"
        if champion_acc is None:
            return {"moved": False, "version": current.version,
                    "reason": f"the current champion v{current.version} could not be scored on this test split"}
        # Tags hold text: a tie (same model, same split) must not pass for a win by rounding.
        if accuracy <= champion_acc + 1e-6:
            return {"moved": False, "version": current.version,
                    "reason": f"the current champion v{current.version} is as good or better "
                              f"({100 * champion_acc:.2f} % vs {100 * accuracy:.2f} %, {how})"}
    return {"moved": True, "version": str(version),
            "reason": "it beats every baseline" + (" and the previous champion" if current is not None else "")
                      + " on the target test split"}


def _score_registered(name: str, test: Domain):
    def score(version: str) -> float | None:
        import mlflow

        try:
            model = mlflow.pytorch.load_model(f"models:/{name}/{version}")
            probs = predict_proba(model, test)
        except Exception:  # noqa: BLE001 - an old version of another shape cannot be scored here
            return None
        return float((probs.argmax(1) == test.y).mean())
    return score


def write_reports(root: Path, evaluation: dict, selection: dict, links: dict, chosen_summary: dict,
                  chosen_probs: np.ndarray, test: Domain) -> None:
    """The page a person reads (Markdown and HTML), the chosen model's plots and predictions, and
    reports/evaluation.json, all from the one ``evaluation`` record."""
    chosen, classes = evaluation["chosen"], list(test.classes)
    with atomic_dir(root / EVALUATION_DIR) as tmp:
        plot_confusion_matrix(chosen_summary["confusion_matrix"], classes, tmp / "confusion.png",
                              title=f"{chosen} on target test")
        plot_reliability_diagram(chosen_probs, test.y, tmp / "reliability.png", title=f"{chosen} calibration")
        evaluation["models"][chosen]["plots"] = {"confusion_matrix": "confusion.png", "reliability": "reliability.png"}
        with open(tmp / "predictions.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["actual", "predicted"])
            writer.writerows(zip((classes[i] for i in test.y), (classes[i] for i in chosen_probs.argmax(1))))
        (tmp / "evaluation.md").write_text(render_evaluation_markdown(evaluation, selection, links))
        (tmp / "evaluation.html").write_text(render_evaluation_html(evaluation, selection, links, base_dir=tmp))
        write_json(root / EVALUATION, evaluation)
        headline.write_headline(root, evaluation)  # reports/metrics.json: DVC's flat metrics


def run(params: PipelineParams, root: Path = Path(".")) -> dict:
    selection = read_json(root / SELECTION, "the selection report")
    adapted_manifest = read_json(root / ADAPTED_MODEL / MANIFEST, "the adapted model's manifest")
    chosen = adapted_manifest["method"]
    with timing.work():
        test = target_test(root)
        models = _models(root)
        classes = list(test.classes)
        probs = {name: [predict_proba(m, test) for m in runs] for name, (_, runs) in models.items()}
        summaries = {name: summarise_model(test.y, probs[name], classes, role=role)
                     for name, (role, _) in models.items()}
        baselines = {n: s["predictions"] for n, s in summaries.items() if n != chosen}
        if baselines:
            gain = transfer_gain(test.y, summaries[chosen]["predictions"], baselines, chosen=chosen,
                                 n_boot=params.evaluate.bootstrap, confidence=params.evaluate.confidence,
                                 seed=params.seed)
    if not baselines:  # the chosen method is source-only itself: it is its own baseline
        gain = {"baseline": chosen, "estimate": 0.0, "ci": [0.0, 0.0], "confidence": params.evaluate.confidence,
                "verdict": {"label": "no-significant-difference", "negative_transfer": False,
                            "sentence": "No adaptation was chosen: the source model is evaluated as is."}}
    accuracy = {n: s["accuracy"]["mean"] for n, s in summaries.items()}
    beats = all(accuracy[chosen] > accuracy[n] for n in baselines) if baselines else False
    # The registered version is the first seed's model: the champion contest uses its own score.
    registered_accuracy = summaries[chosen]["accuracy"]["per_seed"][0]
    audit = None
    if params.evaluate.audit:
        first_seed = {n: s["accuracy"]["per_seed"][0] for n, s in summaries.items()}
        audit = audit_candidates(params, root, selection, first_seed, test)
    test_hash = input_hash(root / PREPARED_TEST / "test.npz")
    test_manifest = read_json(root / PREPARED_TEST / MANIFEST, "the test manifest")
    registered = tracking.model_name(params.mlflow.model_prefix, "adapted")
    version = adapted_manifest.get("mlflow_version")

    with tracking.stage_run(root, params, NAME, DEPS) as run_:
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        champion = champion_decision(client, registered, version, registered_accuracy, beats, test_hash,
                                     _score_registered(registered, test), classes=classes)
        evaluation = {
            "target": test_manifest.get("domain"),
            "test": {"n": len(test), "split": "target test", "sha256": test_hash},
            "seeds": adapted_manifest.get("seeds") or [params.seed],
            "chosen": chosen, "method": chosen,
            "models": {n: {k: v for k, v in s.items() if k != "predictions"} for n, s in summaries.items()},
            "gain": gain,
            "champion": champion,
            # Flat headline numbers: what `dvc metrics show` and `dvc metrics diff` compare.
            "road": adapted_manifest.get("road", DOMAIN_ADAPTATION),
            "label_spaces": test_manifest.get("label_spaces"),
            "adapted_accuracy": accuracy[chosen],
            "source_only_accuracy": accuracy.get("source-only"),
            "baseline": gain["baseline"],
            "baseline_accuracy": accuracy[gain["baseline"]],
            "transfer_gain": gain["estimate"],
            "transfer_gain_ci": gain["ci"],
            "negative_transfer": bool(gain["verdict"]["negative_transfer"]),
            "verdict": gain["verdict"]["label"],
            "registered_model": registered,
            "adapted_version": version,
            "champion_moved": champion["moved"],
            "champion_version": champion["version"],
            "champion_reason": champion["reason"],
            "mlflow_run_id": run_.run_id,
        }
        if audit is not None:
            evaluation["audit"] = audit
            evaluation["selection_regret"] = audit["regret"]
        for name in models:
            evaluation["models"][name]["accuracy_mean"] = accuracy[name]
        links = {"MLflow run (make ui)": run_.ui_url(run_.run_id), "MLflow pipeline run": run_.ui_url(run_.parent_id)}
        with timing.work():
            write_reports(root, evaluation, selection, links, summaries[chosen], probs[chosen][0], test)

        if version is not None:
            client.set_model_version_tag(registered, str(version), "test_accuracy", repr(float(registered_accuracy)))
            client.set_model_version_tag(registered, str(version), "test_split_sha256", test_hash)
            client.set_model_version_tag(registered, str(version), "verdict", gain["verdict"]["label"])
            if champion["moved"]:
                client.set_registered_model_alias(registered, CHAMPION, str(version))
        run_.log_metrics({"adapted_accuracy": accuracy[chosen], "source_only_accuracy": accuracy.get("source-only"),
                          "baseline_accuracy": accuracy[gain["baseline"]], "transfer_gain": gain["estimate"],
                          "transfer_gain_ci_low": gain["ci"][0], "transfer_gain_ci_high": gain["ci"][1], **{f"accuracy.{n}": a for n, a in accuracy.items()},
                          **({"audit.regret": audit["regret"]} if audit else {})})
        run_.set_tags({"verdict": gain["verdict"]["label"], "negative_transfer": evaluation["negative_transfer"],
                       "champion_moved": champion["moved"]})
        run_.tag_parent({"verdict": gain["verdict"]["label"], "adapted_accuracy": f"{accuracy[chosen]:.4f}"})
        run_.log_artifact(root / EVALUATION)
        run_.log_artifact(root / EVALUATION_DIR, "evaluation")
    return {"adapted_accuracy": accuracy[chosen], "source_only_accuracy": accuracy.get("source-only"),
            "baseline": gain["baseline"], "verdict": gain["verdict"]["label"], "champion": champion}
