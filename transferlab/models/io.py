"""Saving and loading networks as safetensors weights plus a JSON spec: never a pickle."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from transferlab.ensemble import EnsembleClassifier
from transferlab.errors import DataError
from transferlab.models.classifier import Classifier, ModelSpec, build_model

WEIGHTS = "model.safetensors"
SPEC = "model.json"


def save_model(model: Classifier | EnsembleClassifier, folder: str | Path, extra: dict | None = None) -> None:
    """Write ``model.safetensors`` and ``model.json`` into ``folder`` (created if missing). An ensemble
    keeps the same two files: its members' weights under ``members.N.``, their specs in ``members``
    beside ``spec`` (the first member's, which says what the ensemble reads and predicts)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    meta = {"spec": model.spec.model_dump(), **(extra or {})}
    if isinstance(model, EnsembleClassifier):
        meta["members"] = [m.spec.model_dump() for m in model.members]
    (folder / SPEC).write_text(json.dumps(meta, indent=2, sort_keys=True))


def load_model(folder: str | Path) -> Classifier | EnsembleClassifier:
    folder = Path(folder)
    try:
        meta = json.loads((folder / SPEC).read_text())
        if "members" in meta:
            model = EnsembleClassifier([build_model(ModelSpec(**spec)) for spec in meta["members"]])
        else:
            model = build_model(ModelSpec(**meta["spec"]))
        model.load_state_dict(load_file(str(folder / WEIGHTS)))
    except FileNotFoundError as exc:
        raise DataError(f"no saved model in {folder}: {exc.filename} is missing") from exc
    except (KeyError, TypeError, ValueError, RuntimeError, OSError) as exc:
        raise DataError(f"the model in {folder} is unreadable or corrupt ({type(exc).__name__})") from exc
    return model.eval()
