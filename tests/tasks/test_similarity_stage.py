"""The similarity stage on the default pair (mnist5k → uci-digits, subsampled): the report holds every
number the issue lists, the headline metrics and plots appear, and shifting the target moves MMD."""

import json
import logging

import pytest

from tasks import prepare, pretrain, similarity, validate
from tasks.paths import SIMILARITY, SIMILARITY_METRICS, SIMILARITY_PLOTS
from transferlab.config import parse_params


def _params(**similarity_overrides):
    return parse_params({
        "data": {"source": {"name": "mnist5k", "max_samples": 600},
                 "target": {"name": "uci-digits", "max_samples": 600}, "target_labels_per_class": 5},
        "pretrain": {"epochs": 1, "max_steps_per_epoch": 6},
        "similarity": {"permutations": 50, "max_samples": 200, **similarity_overrides},
    })


@pytest.fixture(scope="module")
def default_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("default-pair")
    params = _params()
    prepare.run(params, root)
    validate.run(params, root)
    pretrain.run(params, root)
    return root


@pytest.fixture(autouse=True)
def _local_mlflow(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_stage_writes_report_metrics_and_plots(default_pair, caplog):
    caplog.set_level(logging.INFO, logger="transferlab")
    summary = similarity.run(_params(), default_pair)
    report = json.loads((default_pair / SIMILARITY).read_text())
    mmd = report["mmd"]
    # The headline MMD² says where it was measured (`transferlab similarity` measures input space).
    assert mmd["features"] == report["feature_layer"]
    assert mmd["feature_space"] == f"the source model's '{report['feature_layer']}' features"
    # Progress, step by step: the stage took minutes without a word in a pipe or the Prefect UI.
    lines = [r.getMessage() for r in caplog.records if r.name == "transferlab.progress"]
    assert lines[0] == f"MMD test on {mmd['feature_space']}: 200 source + 200 target samples, 50 permutations"
    assert lines[1].startswith("MMD test done in ") and f"p = {mmd['p_value']:.3g}" in lines[1]
    assert any(line.startswith("layer profile: layer 1/") for line in lines)
    assert any(line.startswith("transferability of the source model") for line in lines)
    assert mmd["mmd2"] > 0 and 0 < mmd["p_value"] <= 1 and mmd["permutations"] == 50
    assert mmd["ci"][0] <= mmd["mmd2"] <= mmd["ci"][1] and mmd["ci_method"].startswith("asymptotic")
    assert len(mmd["bandwidths"]) == 5 and mmd["n_source"] == mmd["n_target"] == 200
    assert [layer["layer"] for layer in report["layers"]][-1] == "logits" and len(report["layers"]) >= 4
    assert report["class_conditional"]["labels_from"] == "target-labelled"
    assert report["class_conditional"]["per_class"]
    assert 0 <= report["a_distance"] <= 2 and report["coral"] >= 0
    assert {"leep", "nce", "hscore", "logme"} <= set(report["transferability"])
    assert report["seed"] == 0 and report["runtime_s"] > 0
    metrics = json.loads((default_pair / SIMILARITY_METRICS).read_text())
    assert metrics["mmd2"] == pytest.approx(mmd["mmd2"]) and "mmd_p_value" in metrics
    assert {p.name for p in (default_pair / SIMILARITY_PLOTS).iterdir()} >= {
        "layer_profile.png", "null_distribution.png", "embedding.png"}
    assert summary["mmd2"] == pytest.approx(mmd["mmd2"])


def test_float32_and_bootstrap_options_reach_the_report(default_pair):
    similarity.run(_params(dtype="float32", bootstrap=50, plots=False), default_pair)
    mmd = json.loads((default_pair / SIMILARITY).read_text())["mmd"]
    assert mmd["dtype"] == "float32" and mmd["ci_method"].startswith("bootstrap")
