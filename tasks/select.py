"""select: from the similarity report and the label budget to one transfer method, with reasons."""

from __future__ import annotations

from pathlib import Path

from transferlab.config import PipelineParams
from transferlab.selection import SelectionConfig, select_by_rules
from tasks import timing, tracking
from tasks.io import read_json, write_json
from tasks.paths import MANIFEST, PREPARED_TARGET, SELECTION, SIMILARITY

NAME = "select"
DEPS = [SIMILARITY, PREPARED_TARGET]


def selection_config(params: PipelineParams) -> SelectionConfig:
    s = params.select
    return SelectionConfig(mode=s.mode, alpha=params.similarity.alpha, force_method=s.force_method,
                           unsupervised_method=s.unsupervised_method)


def run(params: PipelineParams, root: Path = Path(".")) -> dict:
    report = read_json(root / SIMILARITY, "the similarity report")
    manifest = read_json(root / PREPARED_TARGET / MANIFEST, "the target manifest")
    k = int(manifest["labels_per_class"])
    n_classes = len(manifest["classes"])
    with tracking.stage_run(root, params.mlflow.experiment, NAME, DEPS) as run_:
        run_.log_params({"select": params.select.model_dump(), "labels_per_class": k})
        with timing.work():
            selection = select_by_rules(report, k, n_classes, selection_config(params))
        payload = selection.to_dict()
        payload["method_params"] = {**params.adapt.methods.get(selection.method, {}), **(payload.get("settings") or {})}
        write_json(root / SELECTION, payload)
        run_.set_tags({"selected_method": selection.method, "selection_mode": payload.get("mode", params.select.mode)})
        run_.log_artifact(root / SELECTION)
        run_.tag_parent({"selected_method": selection.method})
    return {"method": selection.method, "reasons": payload.get("reasons", [])}
