"""evaluate: the only stage that reads the target test split. It cuts the split once into a
promotion hold-out and a report part (transferlab.evaluation.promotion). On the report part it scores
the adapted model and the baselines, computes the transfer gain with a bootstrap CI and the
negative-transfer verdict, and writes the report a person reads before shipping. On the promotion
part alone it applies the one promotion rule: the MLflow ``champion`` alias moves only when the
version's verdict there is a significant gain over the best baseline and it beats the current
champion there. The alias, the version's tags, the run's tags and every page carry that decision."""

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
from transferlab.evaluation.zero_shot import zero_shot_scores
from transferlab.evaluation.promotion import POSITIVE, RULE, PromotionSplit, Rival, promotion_decision, promotion_split
from transferlab.models import load_model
from transferlab.selection.zero_shot import is_zero_shot
from tasks import headline, project_lock, timing, tracking
from tasks.adapt import fit_method, run_fit_jobs, seed_dir
from tasks.jobs import LOCAL, JobRunner
from tasks.common import adapt_seeds, train_settings
from tasks.data_files import adaptation_data, source_model_folder, target_test
from tasks.io import atomic_dir, input_hash, read_json, write_json
from tasks.paths import (ADAPTED_MODEL, BASELINE_MODELS, EVALUATION, EVALUATION_DIR, MANIFEST, PREPARED_SOURCE,
                         PREPARED_TARGET, PREPARED_TEST, SELECTION, SOURCE_MODEL, store_root)

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
        models["source-only"] = ("baseline", [load_model(source_model_folder(root))])
    baselines = read_json(root / BASELINE_MODELS / MANIFEST, "the baselines' manifest")
    for name in baselines.get("baselines", []):
        if name not in models:
            models[name] = ("baseline", per_seed(root / BASELINE_MODELS / name))
    return models


def audit_candidates(params: PipelineParams, root: Path, selection: dict, scored: dict[str, float],
                     test: Domain, runner: JobRunner = LOCAL) -> dict:
    """Oracle audit: train every other eligible candidate of the selection (first training seed,
    same settings as adapt) and score it on the test split. Nothing upstream reads the result.
    On a remote ``runner`` each candidate trains on a worker, which never sees the test split: it
    saves the model, and this process scores it."""

    names = [c["method"] for c in selection.get("candidates", []) if c.get("eligible", True)]
    names = [name for name in dict.fromkeys(names) if name not in scored]
    accuracies = dict(scored)
    settings = train_settings(params, params.adapt.train, seed=adapt_seeds(params)[0])
    for name, model in zip(names, _audit_models(params, root, names, settings, runner)):
        accuracies[name] = float((predict_proba(model, test).argmax(1) == test.y).mean())
    return {**selection_regret(accuracies, selection["method"]), "seed": settings.seed,
            "candidates_trained": [n for n in accuracies if n not in scored]}


def _audit_models(params: PipelineParams, root: Path, names: list[str], settings, runner: JobRunner):
    """The audited candidates' trained models, in ``names``' order."""
    if not runner.remote:
        source_model, data = load_model(source_model_folder(root)), adaptation_data(root)
        for name in names:
            with timing.work():
                yield fit_method(name, params.adapt.methods.get(name, {}), source_model, data, settings).model
        return
    specs = [(name, ((name, params.adapt.methods.get(name, {})),), settings) for name in names]
    for name, outcome in zip(names, run_fit_jobs(runner, root, EVALUATION_DIR.parent, "audit", specs)):
        yield outcome[name].model


def _rival(client, name: str, promo_sha: str, score_version, classes: list[str] | None) -> Rival | None:
    """The current champion as a rival on this promotion part: its recorded score when it was judged
    on this very part, else re-scored here. None when there is no champion."""
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # noqa: BLE001 - MLflow raises a generic error when the alias is unset
        return None
    tags = current.tags or {}
    if classes is not None and "classes" in tags and json.loads(tags["classes"]) != classes:
        return Rival(str(current.version), None, other_classes=True)
    if tags.get("promotion_split_sha256") == promo_sha and "promotion_accuracy" in tags:
        return Rival(str(current.version), float(tags["promotion_accuracy"]), how="recorded on this same hold-out")
    return Rival(str(current.version), score_version(current.version), how="re-scored on this hold-out")


def champion_decision(client, name: str, version: int | None, verdict: str, accuracy: float, promo_sha: str,
                      score_version, classes: list[str] | None = None, baseline: str = "the best baseline") -> dict:
    """The promotion rule (:func:`promotion_decision`) applied to the registry's current champion.
    ``verdict`` and ``accuracy`` are the version's, on the promotion part named by ``promo_sha``."""
    # Re-scoring the champion downloads and runs it: only worth it when this version can still win.
    contest = version is not None and verdict == POSITIVE
    rival = _rival(client, name, promo_sha, score_version if contest else lambda _: None, classes)
    return promotion_decision(version, verdict, accuracy, rival, baseline=baseline).to_dict()


def _registered_weights(name: str, version: str, into: Path) -> Path:
    """A registered version's transferlab weights (model.safetensors + model.json), logged beside
    the MLflow model as its extra files (tasks/tracking.py register_model), downloaded into ``into``."""
    from mlflow.artifacts import download_artifacts
    from mlflow.tracking import MlflowClient

    model_uri = MlflowClient().get_model_version_download_uri(name, version)
    return Path(download_artifacts(artifact_uri=f"{model_uri.rstrip('/')}/extra_files", dst_path=str(into)))


def _score_registered(name: str, test: Domain):
    """Scores a registered version on ``test`` from the weights transferlab saved. (MLflow's own pt2
    model cannot be put in eval mode, so it is not what is loaded.)"""
    def score(version: str) -> float | None:
        import tempfile

        try:
            with tempfile.TemporaryDirectory(prefix="transferlab-champion-") as tmp:
                model = load_model(_registered_weights(name, str(version), Path(tmp)))
            probs = predict_proba(model, test)
        except Exception:  # noqa: BLE001 - no weights (an older version), or a network of another shape
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


def _gain(params: PipelineParams, chosen: str, y: np.ndarray, predictions: dict[str, list]) -> dict:
    """Transfer gain of ``chosen`` over the best of the other models, with CI and verdict."""
    baselines = {n: p for n, p in predictions.items() if n != chosen}
    if not baselines:  # the chosen method is source-only itself: it is its own baseline
        return {"baseline": chosen, "estimate": 0.0, "ci": [0.0, 0.0], "confidence": params.evaluate.confidence,
                "verdict": {"label": "no-significant-difference", "negative_transfer": False,
                            "sentence": "No adaptation was chosen: the source model is evaluated as is."}}
    return transfer_gain(y, predictions[chosen], baselines, chosen=chosen, n_boot=params.evaluate.bootstrap,
                         confidence=params.evaluate.confidence, seed=params.seed)


def _promotion_evidence(params: PipelineParams, chosen: str, test: Domain, split: PromotionSplit,
                        probs: dict[str, list[np.ndarray]]) -> dict:
    """What the champion contest reads, all on the promotion part: the verdict (every training seed
    of the chosen method against the best baseline, as reported) and the registered version's own
    accuracy (the first seed's model, the one registered)."""
    y = test.y[split.promotion]
    predictions = {n: [p[split.promotion].argmax(1) for p in runs] for n, runs in probs.items()}
    gain = _gain(params, chosen, y, predictions)
    return {**split.to_dict(), "rule": RULE, "verdict": gain["verdict"]["label"], "gain": gain,
            "accuracy": float((predictions[chosen][0] == y).mean())}


def _zero_shot(test_manifest: dict, labels_per_class: int, probs: dict[str, list[np.ndarray]], test: Domain,
               chosen: str) -> dict | None:
    """On the zero-shot road (:func:`~transferlab.selection.zero_shot.is_zero_shot`, the test that
    select applies: an attribute table, new classes, no target label): every model's accuracy on the
    unseen classes, GZSL seen / unseen / harmonic mean when the test holds seen classes too, and
    chance (:mod:`transferlab.evaluation.zero_shot`), on the report part, as the mean over training
    seeds."""
    spaces = test_manifest.get("label_spaces") or {}
    if not is_zero_shot(test_manifest.get("road", ""), labels_per_class, test_manifest.get("attributes"),
                        spaces.get("new_classes")):
        return None
    seen = spaces.get("shared_classes", [])
    models = {}
    for name, runs in probs.items():
        # zero_shot_scores reads only each row's argmax: the probabilities serve as they are
        per_seed = [zero_shot_scores(p, test.y, test.classes, seen) for p in runs]
        first = per_seed[0]
        models[name] = {"unseen_accuracy": _seed_mean(per_seed, "unseen"),
                        "gzsl_seen_accuracy": _seed_mean(per_seed, "gzsl_seen"),
                        "gzsl_unseen_accuracy": _seed_mean(per_seed, "gzsl_unseen"),
                        "harmonic_mean": _seed_mean(per_seed, "harmonic_mean")}
    return {"chance": first["chance"], "unseen_classes": first["unseen_classes"], "seen_classes": first["seen_classes"],
            "metric": first["metric"], "attribute_table": test_manifest["attributes"].get("source"),
            "chosen": chosen, "models": models}


def _seed_mean(per_seed: list[dict], key: str) -> float | None:
    values = [r[key] for r in per_seed if r.get(key) is not None]
    return float(np.mean(values)) if values else None


def run(params: PipelineParams, root: Path = Path("."), runner: JobRunner = LOCAL) -> dict:
    """``runner``: where the oracle audit's candidates train (execution.runner: dask: on workers)."""
    selection = read_json(root / SELECTION, "the selection report")
    adapted_manifest = read_json(root / ADAPTED_MODEL / MANIFEST, "the adapted model's manifest")
    chosen = adapted_manifest["method"]
    test_hash = input_hash(root / PREPARED_TEST / "test.npz")
    with timing.work():
        full_test = target_test(root)
        split = promotion_split(full_test.y, params.evaluate.promotion_share, test_hash)
        test = full_test.subset(split.report)  # every reported number is on this part
        models = _models(root)
        classes = list(test.classes)
        full_probs = {name: [predict_proba(m, full_test) for m in runs] for name, (_, runs) in models.items()}
        probs = {name: [p[split.report] for p in runs] for name, runs in full_probs.items()}
        summaries = {name: summarise_model(test.y, probs[name], classes, role=role)
                     for name, (role, _) in models.items()}
        gain = _gain(params, chosen, test.y, {n: s["predictions"] for n, s in summaries.items()})
        promotion = _promotion_evidence(params, chosen, full_test, split, full_probs)
    accuracy = {n: s["accuracy"]["mean"] for n, s in summaries.items()}
    test_manifest = read_json(root / PREPARED_TEST / MANIFEST, "the test manifest")
    zero_shot = _zero_shot(test_manifest, params.data.target_labels_per_class, probs, test, chosen)
    audit = None
    if params.evaluate.audit:
        first_seed = {n: s["accuracy"]["per_seed"][0] for n, s in summaries.items()}
        audit = audit_candidates(params, root, selection, first_seed, test, runner)
    registered = tracking.model_name(params.mlflow.model_prefix, "adapted")
    version = adapted_manifest.get("mlflow_version")

    # One champion contest at a time per registry: experiments of `dvc queue start -j N` share it, and
    # two decisions made at once would each judge the old champion and the later alias move would win.
    with tracking.stage_run(root, params, NAME, DEPS) as run_, project_lock.champion_contest(store_root(root)):
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        champion = champion_decision(client, registered, version, promotion["verdict"], promotion["accuracy"],
                                     split.sha256, _score_registered(registered, full_test.subset(split.promotion)),
                                     classes=classes, baseline=promotion["gain"]["baseline"])
        evaluation = {
            "target": test_manifest.get("domain"),
            "test": {"n": len(full_test), "split": "target test", "sha256": test_hash,
                     "report_n": len(test), "promotion_n": int(split.promotion.size)},
            "seeds": adapted_manifest.get("seeds") or [params.seed],
            "chosen": chosen, "method": chosen,
            "models": {n: {k: v for k, v in s.items() if k != "predictions"} for n, s in summaries.items()},
            "gain": gain,
            "promotion": promotion,
            "champion": champion,
            # Flat headline numbers (on the report part): what `dvc metrics show` and `dvc metrics diff` compare.
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
        if zero_shot is not None:
            evaluation["zero_shot"] = zero_shot
            evaluation.update({k: zero_shot["models"][chosen].get(k) for k in headline.ZERO_SHOT_NUMBERS})
        if audit is not None:
            evaluation["audit"] = audit
            evaluation["selection_regret"] = audit["regret"]
        for name in models:
            evaluation["models"][name]["accuracy_mean"] = accuracy[name]
        evaluation["links"] = {"MLflow evaluate run (make ui)": run_.ui_url(run_.run_id),
                               "MLflow pipeline run": run_.ui_url(run_.parent_id)}
        with timing.work():
            write_reports(root, evaluation, selection, evaluation["links"], summaries[chosen], probs[chosen][0], test)
        _record_decision(client, run_, evaluation, summaries[chosen]["accuracy"]["per_seed"][0])
        run_.log_artifact(root / EVALUATION)
        run_.log_artifact(root / EVALUATION_DIR, "evaluation")
    return {"adapted_accuracy": accuracy[chosen], "source_only_accuracy": accuracy.get("source-only"),
            "baseline": gain["baseline"], "verdict": gain["verdict"]["label"], "champion": champion}


def decision_tags(evaluation: dict) -> dict[str, str]:
    """The promotion decision as tags: the same on the model version and on the evaluate run."""
    champion, promotion = evaluation["champion"], evaluation["promotion"]
    return {"verdict": evaluation["verdict"], "promotion_verdict": promotion["verdict"],
            "champion_decision": "promoted" if champion["moved"] else "not promoted",
            "champion_version": str(champion["version"]), "champion_reason": champion["reason"]}


def _record_decision(client, run_, evaluation: dict, registered_accuracy: float) -> None:
    """The alias move, the version's tags and the evaluate run's tags and metrics, all from the one decision."""
    registered, version = evaluation["registered_model"], evaluation["adapted_version"]
    promotion, accuracy = evaluation["promotion"], evaluation["models"]
    tags = decision_tags(evaluation)
    if version is not None:
        for key, value in {**tags, "test_accuracy": repr(float(registered_accuracy)),
                           "test_split_sha256": evaluation["test"]["sha256"],
                           "promotion_accuracy": repr(float(promotion["accuracy"])),
                           "promotion_split_sha256": promotion["sha256"]}.items():
            client.set_model_version_tag(registered, str(version), key, value)
        if evaluation["champion_moved"]:
            client.set_registered_model_alias(registered, CHAMPION, str(version))
    # MLflow's metrics are DVC's headline numbers (one derivation), plus the per-model detail.
    headline_numbers = {k: float(v) for k, v in headline.headline_metrics(evaluation).items()}
    run_.log_metrics({**headline_numbers, "promotion_accuracy": promotion["accuracy"],
                      **{f"accuracy.{n}": m["accuracy_mean"] for n, m in accuracy.items()},
                      **({"audit.regret": evaluation["selection_regret"]} if "audit" in evaluation else {})})
    run_.set_tags({**tags, "negative_transfer": evaluation["negative_transfer"],
                   "champion_moved": evaluation["champion_moved"]})
    run_.tag_parent({"verdict": evaluation["verdict"], "adapted_accuracy": f"{evaluation['adapted_accuracy']:.4f}",
                     "champion_decision": tags["champion_decision"]})
