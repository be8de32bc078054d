"""The headline metrics file DVC compares: flat, short, and the evaluation record's own numbers."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tasks import adapt, evaluate
from tasks.headline import headline_metrics
from tasks.io import write_json
from tasks.paths import EVALUATION, METRICS, SELECTION
from transferlab.config import parse_params

sys.path.insert(0, str(Path(__file__).resolve().parent))
from blob_project import write_blob_project  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DVC = Path(sys.executable).parent / "dvc"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A project in which adapt (fine-tuning, one seed) and evaluate have run on small blob domains."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield _evaluate(tmp_path_factory.mktemp("headline"))


def _evaluate(tmp_path: Path) -> Path:
    write_blob_project(tmp_path, source_epochs=3)
    write_json(tmp_path / SELECTION, {"method": "finetune", "reasons": ["test"], "method_params": {},
                                      "candidates": [{"method": "finetune", "score": 1.0, "eligible": True,
                                                      "why": "test"}]})
    params = parse_params({"data": {"target_labels_per_class": 10}, "adapt": {"train": {"epochs": 2, "batch_size": 32}},
                           "evaluate": {"bootstrap": 100}})
    adapt.run(params, tmp_path)
    evaluate.run(params, tmp_path)
    return tmp_path


def test_the_headline_file_holds_the_evaluation_records_numbers_flat(evaluated):
    record = json.loads((evaluated / EVALUATION).read_text())
    metrics = json.loads((evaluated / METRICS).read_text())
    assert metrics == {
        "adapted_accuracy": record["adapted_accuracy"],
        "source_only_accuracy": record["source_only_accuracy"],
        "baseline_accuracy": record["baseline_accuracy"],
        "transfer_gain": record["transfer_gain"],
        "transfer_gain_ci_low": record["transfer_gain_ci"][0],
        "transfer_gain_ci_high": record["transfer_gain_ci"][1],
        "negative_transfer": record["negative_transfer"],
    }
    # flat: numbers and booleans only, nothing DVC would have to flatten or cannot diff
    assert all(isinstance(v, (int, float, bool)) for v in metrics.values())
    assert 0.0 <= metrics["adapted_accuracy"] <= 1.0


def test_dvc_metrics_show_of_the_projects_dvc_yaml_prints_short_lines(evaluated):
    """The project's own dvc.yaml declares this file as its one metric: `dvc metrics show` is a
    table of a few short columns, not the ~3,500-character lines of the whole record."""
    shutil.copy(ROOT / "dvc.yaml", evaluated / "dvc.yaml")
    subprocess.run([str(DVC), "init", "--no-scm", "-q"], cwd=evaluated, check=True)
    shown = subprocess.run([str(DVC), "metrics", "show"], cwd=evaluated, capture_output=True, text=True,
                           check=True, env={"DVC_NO_ANALYTICS": "1", "PATH": str(DVC.parent)}).stdout
    lines = shown.splitlines()
    assert lines and "adapted_accuracy" in lines[0] and str(METRICS) in shown
    assert max(len(line) for line in lines) < 200, shown


def test_a_number_the_record_lacks_is_left_out_not_null():
    """Without a source-only baseline (a model and no source data) there is no source-only accuracy."""
    record = {"adapted_accuracy": 0.8, "source_only_accuracy": None, "baseline_accuracy": 0.7,
              "transfer_gain": 0.1, "transfer_gain_ci": [0.05, 0.15], "negative_transfer": False,
              "models": {"nested": {"deep": 1}}, "method": "shot"}
    assert headline_metrics(record) == {"adapted_accuracy": 0.8, "baseline_accuracy": 0.7, "transfer_gain": 0.1,
                                        "transfer_gain_ci_low": 0.05, "transfer_gain_ci_high": 0.15,
                                        "negative_transfer": False}
