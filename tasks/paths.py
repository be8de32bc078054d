"""Where every stage reads and writes, relative to the project root. dvc.yaml names the same paths
(tests/tasks/test_dag.py checks that they agree)."""

import os
from pathlib import Path

PARAMS = Path("params.yaml")
# The project's own datasets, each tracked by DVC (tasks/datasets.py); a dep of prepare as a whole.
RAW_DATA = Path("data/raw")
PREPARED_SOURCE = Path("data/prepared/source")
PREPARED_TARGET = Path("data/prepared/target")
# The target test split lives in its own folder so that DVC's deps show exactly which stages read
# it (validate, for integrity only, and evaluate) and so that tests can lock it away from the rest.
PREPARED_TEST = Path("data/prepared/target_test")
# Candidate intermediate domains (data.intermediate): unlabelled pools, written without their labels.
PREPARED_INTERMEDIATE = Path("data/prepared/intermediate")
VALIDATION = Path("reports/validation.json")
SOURCE_MODEL = Path("models/source")
# With several candidate sources (data.sources), data/prepared/source and models/source hold one
# sub-folder per candidate, candidates/<index>; select chooses one, and adapt and evaluate read it.
CANDIDATES = "candidates"
# Where a user's own model files live so that DVC tracks them (a dependency of prepare and pretrain).
PRETRAINED_DIR = Path("models/pretrained")
SIMILARITY = Path("reports/similarity.json")
SIMILARITY_PLOTS = Path("reports/similarity")
SIMILARITY_METRICS = Path("reports/similarity_metrics.json")
PRETRAIN_METRICS = Path("reports/pretrain.json")
SELECTION = Path("reports/selection.json")
ADAPTED_MODEL = Path("models/adapted")
BASELINE_MODELS = Path("models/baselines")
EVALUATION = Path("reports/evaluation.json")
EVALUATION_DIR = Path("reports/evaluation")
# The flat headline numbers DVC compares (`dvc metrics show/diff`, `dvc exp show`): the one DVC
# metric, committed to git so that commits and experiments carry it (tasks/headline.py).
METRICS = Path("reports/metrics.json")
MANIFEST = "manifest.json"


def store_root(root: Path) -> Path:
    """The project whose MLflow store (and registry, and champion) a run at ``root`` belongs to: ``root``
    itself, except in one of DVC's temporary experiment workspaces (``dvc exp run --queue`` / ``--temp``
    run the pipeline in a copy under ``.dvc/tmp/exps/`` that is deleted afterwards), where it is the
    repository that queued the experiment (DVC names it in DVC_ROOT): its runs must outlive the copy."""
    root = Path(root).resolve()
    queued_from = os.environ.get("DVC_ROOT")
    if queued_from and root.is_relative_to(Path(queued_from).resolve() / ".dvc" / "tmp" / "exps"):
        return Path(queued_from).resolve()
    return root


def tracking_uri(root: Path) -> str:
    """MLflow's tracking and registry store: MLFLOW_TRACKING_URI, else SQLite at the project root
    (:func:`store_root`)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{store_root(root) / 'mlflow.db'}"
