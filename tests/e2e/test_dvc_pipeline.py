"""The real pipeline, run by `dvc repro` on a tiny configuration in a temporary git repo."""

from __future__ import annotations

import json
import re

import pytest
from mlflow.tracking import MlflowClient

from tasks.paths import METRICS
from tests.e2e.project import BIN, make_project, set_param, sh

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    path = make_project(tmp_path_factory.mktemp("dvc") / "proj")
    first = sh([str(BIN / "dvc"), "repro"], path)
    return path, first.stdout + first.stderr


def _ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([\w-]+)'", output)


def test_first_repro_runs_every_stage_in_order(project):
    _, output = project
    assert _ran(output) == ["prepare", "validate", "pretrain", "similarity", "select", "adapt", "evaluate"]


def test_outputs_and_manifests_appear(project):
    path, _ = project
    for folder in ("data/prepared/source", "data/prepared/target", "data/prepared/target_test",
                   "models/source", "models/adapted", "models/baselines"):
        manifest = json.loads((path / folder / "manifest.json").read_text())
        assert manifest["kind"]
    assert (path / "models/source/model.safetensors").stat().st_size > 1000
    for report in ("validation.json", "similarity.json", "selection.json", "evaluation.json",
                   "evaluation/evaluation.md", "evaluation/evaluation.html", "evaluation/confusion.png",
                   "similarity_metrics.json"):
        assert (path / "reports" / report).exists(), report


def test_metrics_are_real_numbers(project):
    path, _ = project
    evaluation = json.loads((path / "reports/evaluation.json").read_text())
    assert 0.0 <= evaluation["adapted_accuracy"] <= 1.0
    assert 0.15 < evaluation["source_only_accuracy"] <= 1.0  # well above chance (0.1) even when tiny
    assert evaluation["transfer_gain"] == pytest.approx(
        evaluation["adapted_accuracy"] - evaluation["source_only_accuracy"], abs=1e-9) or \
        evaluation["gain"]["baseline"] != "source-only"
    lo, hi = evaluation["transfer_gain_ci"]
    assert lo <= evaluation["transfer_gain"] <= hi
    similarity = json.loads((path / "reports/similarity.json").read_text())
    assert similarity["mmd"]["mmd2"] > 0 and 0 <= similarity["mmd"]["p_value"] <= 1
    selection = json.loads((path / "reports/selection.json").read_text())
    assert selection["method"] == evaluation["method"]
    assert selection["reasons"]
    shown = sh([str(BIN / "dvc"), "metrics", "show", "--json"], path).stdout
    assert "adapted_accuracy" in shown


def test_models_are_registered_with_lineage_tags_and_alias(project):
    path, _ = project
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{path / 'mlflow.db'}")
    client = MlflowClient()
    source = client.get_latest_versions("transferlab-source")
    adapted = client.search_model_versions("name='transferlab-adapted'")
    assert len(source) == 1 and len(adapted) == 1
    evaluation = json.loads((path / "reports/evaluation.json").read_text())
    if evaluation["champion_moved"]:
        assert client.get_model_version_by_alias("transferlab-adapted", "champion").version == adapted[0].version
    assert evaluation["champion_reason"]
    run = client.get_run(adapted[0].run_id)
    commit = sh(["git", "rev-parse", "HEAD"], path).stdout.strip()
    assert run.data.tags["git.commit"] == commit
    assert any(k.startswith("dvc.md5.models/source") for k in run.data.tags)
    assert any(k.startswith("data.sha256.data/prepared/target") for k in run.data.tags)
    assert not any("target_test" in k for k in run.data.tags), "adapt must not read the test split"
    parent_id = run.data.tags["mlflow.parentRunId"]
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(r.data.tags["transferlab.stage"] for r in children) == sorted(
        ["prepare", "validate", "pretrain", "similarity", "select", "adapt", "evaluate"])
    assert client.get_run(parent_id).info.status == "FINISHED"


def test_a_clean_clones_first_run_is_not_dirty(project):
    """The committed dvc.lock (another run's) is rewritten by this run: that is not uncommitted code."""
    path, _ = project
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{path / 'mlflow.db'}")
    runs = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("transferlab").experiment_id],
                                      "tags.`transferlab.stage` != ''")
    assert len(runs) >= 7
    assert {r.data.tags["git.dirty"] for r in runs} == {"false"}


def _status(path) -> set[str]:
    return set(json.loads(sh([str(BIN / "dvc"), "status", "--json"], path).stdout or "{}"))


@pytest.mark.parametrize("module, importers", [
    ("transferlab/validators.py", {"pretrain", "similarity", "select", "adapt", "evaluate"}),
    ("transferlab/methods/dann.py", {"select", "adapt", "evaluate"}),
    ("transferlab/data/readers.py", {"prepare", "validate", "pretrain", "similarity", "select", "adapt",
                                     "evaluate"}),
])
def test_editing_a_module_makes_dvc_status_name_the_stages_that_import_it(project, module, importers):
    path, _ = project
    file = path / module
    original = file.read_bytes()
    try:
        file.write_bytes(original + b"\n# an edit\n")
        assert _status(path) == importers
    finally:
        file.write_bytes(original)
    assert _status(path) == set()


def test_a_dvc_lock_damaged_by_a_kill_is_repaired_and_the_rerun_gives_the_same_metrics(project):
    path, _ = project
    before = json.loads((path / "reports/evaluation.json").read_text())
    (path / "dvc.lock").write_text("")  # what a kill during DVC's write leaves (0 bytes, 3 of 3 times)
    repaired = sh([str(BIN / "transferlab"), "repair"], path)
    assert repaired.stderr.startswith("note: dvc.lock was damaged") and repaired.stderr.count("\n") == 1
    out = sh([str(BIN / "dvc"), "repro"], path)
    assert set(_ran(out.stdout + out.stderr)) <= {"evaluate"}  # the good copy predates only the last stage
    after = json.loads((path / "reports/evaluation.json").read_text())
    for key in ("adapted_accuracy", "source_only_accuracy", "transfer_gain", "transfer_gain_ci", "method"):
        assert after[key] == before[key]
    assert sh([str(BIN / "transferlab"), "repair"], path).stdout.strip() == "nothing to repair"


def test_dvc_repro_itself_repairs_a_damaged_lock_before_reading_it(project):
    path, _ = project
    before = json.loads((path / "reports/evaluation.json").read_text())
    (path / "dvc.lock").write_text("")  # DVC reads it before any stage: the start-up hook repairs it
    out = sh([str(BIN / "dvc"), "repro"], path)
    notes = [line for line in out.stderr.splitlines() if line.startswith("note: dvc.lock was damaged")]
    assert len(notes) == 1 and "restored the last good copy" in notes[0], out.stderr[-2000:]
    after = json.loads((path / "reports/evaluation.json").read_text())
    assert {k: after[k] for k in ("adapted_accuracy", "transfer_gain", "method")} == \
        {k: before[k] for k in ("adapted_accuracy", "transfer_gain", "method")}


def test_second_repro_does_nothing_and_status_is_clean(project):
    path, _ = project
    again = sh([str(BIN / "dvc"), "repro"], path)
    assert _ran(again.stdout + again.stderr) == []
    status = sh([str(BIN / "dvc"), "status"], path).stdout
    assert "up to date" in status


def test_changing_one_param_reruns_that_stage_and_later_only(project):
    path, _ = project
    set_param(path, "similarity.permutations", 60)
    out = sh([str(BIN / "dvc"), "repro"], path)
    ran = _ran(out.stdout + out.stderr)
    assert ran[0] == "similarity"
    assert not {"prepare", "validate", "pretrain"} & set(ran)
    assert "up to date" in sh([str(BIN / "dvc"), "status"], path).stdout


# --- DVC experiments (last: they commit the project and leave an experiment applied) ---

def _headline(entry: dict) -> dict:
    return entry["data"]["metrics"][str(METRICS)]["data"]


def test_dvc_experiments_show_real_numbers_for_the_commit_and_the_experiment(project):
    """After a run is committed, `dvc exp run -S` is an experiment that carries its own headline metrics:
    `dvc exp show` and `dvc metrics diff` print numbers for both (they printed `!` and `-` while no
    commit held the metrics)."""
    path, _ = project
    sh(["git", "add", "-A"], path)
    sh(["git", "commit", "-qm", "baseline run"], path)
    committed = set(sh(["git", "ls-files"], path).stdout.split())
    assert str(METRICS) in committed
    assert not {f for f in committed if f.startswith(("mlflow.db", "mlruns/", "reports/evaluation", "dvc_plots/",
                                                      ".transferlab"))}
    baseline = json.loads((path / METRICS).read_text())

    out = sh([str(BIN / "dvc"), "exp", "run", "-S", "evaluate.confidence=0.6"], path)
    assert _ran(out.stdout + out.stderr) == ["evaluate"]  # a cheap experiment: only evaluate reads it
    experiment = json.loads((path / METRICS).read_text())
    assert experiment["transfer_gain_ci_high"] - experiment["transfer_gain_ci_low"] < \
        baseline["transfer_gain_ci_high"] - baseline["transfer_gain_ci_low"]

    shown = json.loads(sh([str(BIN / "dvc"), "exp", "show", "--json"], path).stdout)
    head = next(entry for entry in shown if entry["rev"] != "workspace")
    (exp,) = head["experiments"]
    assert _headline(head) == baseline and isinstance(baseline["adapted_accuracy"], float)
    assert _headline(exp["revs"][0]) == experiment
    assert exp["revs"][0]["data"]["params"]["params.yaml"]["data"]["evaluate"]["confidence"] == 0.6

    diff = sh([str(BIN / "dvc"), "metrics", "diff", "--all"], path).stdout
    row = next(line for line in diff.splitlines() if "adapted_accuracy" in line)
    assert re.search(r"adapted_accuracy\s+\d\.\d+\s+\d\.\d+\s+0(\.0+)?\b", row), diff
    assert re.search(r"transfer_gain_ci_low\s+-?\d\.\d+\s+-?\d\.\d+\s+-?\d\.\d+", diff), diff


def test_dvc_plots_diff_shows_both_revisions_and_says_when_the_interactive_plot_cannot_load(project):
    """HEAD's plot files come from DVC's cache (git does not hold reports/evaluation/); the page
    template names what an offline browser cannot draw; dvc_plots/ stays out of `git status`."""
    path, _ = project
    from tests.e2e.project import ROOT

    sh([str(BIN / "dvc"), "plots", "diff", "HEAD", "--html-template", str(ROOT / ".dvc" / "plots.html")], path)
    static = {p.name for p in (path / "dvc_plots" / "static").iterdir()}
    assert {"HEAD_reports_evaluation_confusion.png", "workspace_reports_evaluation_confusion.png"} <= static
    page = (path / "dvc_plots" / "index.html").read_text()
    assert page.count('"rev": "HEAD"') > 10 and page.count('"rev": "workspace"') > 10  # predictions.csv rows
    assert "could not load" in page and "vegaEmbed" in page
    assert "dvc_plots" not in sh(["git", "status", "--porcelain"], path).stdout
