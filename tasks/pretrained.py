"""Starting from a model the user already has: find it, load it safely, fingerprint it.

Three kinds (``model.pretrained.kind``): a version of this project's MLflow registry, a folder
in transferlab's safe format, or a torchvision architecture with a local state-dict file.
Nothing is downloaded and nothing is unpickled. Files under ``models/pretrained/`` are a DVC
dependency of the stages that read them, so editing one re-runs them; a file elsewhere is
still hashed into the lineage, but DVC cannot see it change, and the stage says so.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from transferlab.config import PipelineParams, PretrainedModel
from transferlab.errors import DataError
from transferlab.models import Classifier
from tasks.io import input_hash
from tasks.paths import PRETRAINED_DIR


@dataclass
class ImportedModel:
    model: Classifier
    origin: dict = field(default_factory=dict)  # where it came from, its hash, whether DVC tracks it

    @property
    def classes(self) -> tuple[str, ...]:
        return self.model.classes


def _local(root: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else root / p


def _tracked(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to((root / PRETRAINED_DIR).resolve())
        return True
    except ValueError:
        return False


def _registry_folder(cfg: PretrainedModel, root: Path, experiment: str, into: Path,
                     key: str = "model.pretrained") -> tuple[Path, dict]:
    """Download a registered version's weights (logged beside it as extra files) into ``into``."""
    from mlflow.artifacts import download_artifacts
    from mlflow.tracking import MlflowClient

    from tasks import tracking

    tracking.configure(root, experiment)
    name, _, rest = cfg.uri.removeprefix("models:/").partition("/")
    client = MlflowClient()
    try:
        if "@" in name:
            name, alias = name.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            version = client.get_model_version(name, rest)
    except Exception:  # noqa: BLE001 - MLflow raises its generic MlflowException for a missing name/alias
        raise DataError(f"{key}.uri {cfg.uri}: no such version in the registry at "
                        f"{tracking.tracking_uri(root)}") from None
    local = Path(download_artifacts(artifact_uri=f"models:/{name}/{version.version}", dst_path=str(into)))
    weights = local / "extra_files"
    if not (weights / "model.json").exists():
        raise DataError(f"{key}.uri {cfg.uri}: version {version.version} of '{name}' carries no "
                        "transferlab weights (model.json + model.safetensors); it was registered by an older "
                        "transferlab or another tool: use kind 'folder' or 'torchvision' instead")
    return weights, {"registered_model": name, "registry_version": str(version.version),
                     "registry_run_id": version.run_id}


def import_pretrained(params: PipelineParams, root: Path = Path(".")) -> ImportedModel:
    """Load ``params.model.pretrained`` (see the module doc) and record its origin."""
    if params.model.pretrained is None:
        raise DataError("model.pretrained is not set: there is no model to import")
    return import_model(params.model.pretrained, params, root)


def import_model(cfg: PretrainedModel, params: PipelineParams, root: Path = Path("."),
                 key: str = "model.pretrained") -> ImportedModel:
    """Load the model ``cfg`` names (params ``key``: model.pretrained, or a candidate of data.sources)."""
    from transferlab.models import import_folder, import_torchvision

    origin: dict = {"kind": cfg.kind}
    if cfg.kind == "registry":
        with tempfile.TemporaryDirectory(prefix="transferlab-import-") as tmp:
            folder, details = _registry_folder(cfg, root, params.mlflow.experiment, Path(tmp), key)
            model = import_folder(folder)
            origin.update(uri=cfg.uri, sha256=input_hash(folder), tracked_by_dvc=False, **details)
        return ImportedModel(model, origin)
    path = _local(root, cfg.path)
    if not path.exists():
        raise DataError(f"{key}.path: {path} does not exist")
    if cfg.kind == "folder":
        model = import_folder(path)
    else:
        classes = cfg.classes
        model = import_torchvision(cfg.arch, path, classes=classes, image_size=cfg.image_size or params.data.image_size,
                                   mean=cfg.mean, std=cfg.std)
        if classes is None:
            # Unnamed outputs are nobody's classes: name them so that no target class can match by accident.
            model.spec = model.spec.model_copy(update={"classes": [f"output-{i}" for i in range(model.spec.num_classes)]})
        origin["arch"] = cfg.arch
    origin.update(path=str(cfg.path), sha256=input_hash(path), tracked_by_dvc=_tracked(root, path))
    return ImportedModel(model, origin)


def untracked_note(origin: dict) -> str | None:
    """What to tell the user when DVC cannot see the imported model change."""
    if origin.get("kind") == "registry":
        return (f"note: {origin['uri']} resolved to version {origin['registry_version']}; DVC does not watch the "
                "registry, so pin a version number (models:/NAME/N) for a reproducible pipeline")
    if not origin.get("tracked_by_dvc"):
        return (f"note: {origin['path']} lies outside {PRETRAINED_DIR}/, so DVC will not notice if it changes; "
                f"copy it there (and `dvc add` it) to make it a tracked dependency")
    return None

