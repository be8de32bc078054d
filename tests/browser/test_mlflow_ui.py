"""The MLflow UI of a pipeline run, as a user opens it (`make ui`): the pipeline run with one nested run
per dvc.yaml stage, and in the model registry the version that holds the `champion` alias with the
lineage tags that trace it to its code, data and Prefect flow run."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from mlflow.tracking import MlflowClient
from selenium.webdriver.common.by import By

from flows.dag import stage_order
from tests.browser.web import (Server, by_text, click, free_port, page_text, requires_chromium, visible, wait)
from tests.e2e.project import BIN, env

pytestmark = [pytest.mark.e2e, pytest.mark.browser, requires_chromium]


@pytest.fixture(scope="module")
def mlflow_ui(pipeline, tmp_path_factory):
    """`mlflow ui` as the Makefile's `ui` target starts it, on a free loopback port. One worker: the
    default four take a minute to start on two busy cores."""
    port = free_port()
    server = Server("mlflow ui", [str(BIN / "mlflow"), "ui", "--backend-store-uri", "sqlite:///mlflow.db",
                                  "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                    pipeline.project, env(), tmp_path_factory.mktemp("mlflow-ui") / "server.log")
    try:
        server.url = f"http://127.0.0.1:{port}/"
        server.wait_http(server.url)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def store(pipeline):
    return MlflowClient(f"sqlite:///{pipeline.project / 'mlflow.db'}")


def _experiment(pipeline) -> str:
    return yaml.safe_load((pipeline.project / "params.yaml").read_text())["mlflow"]["experiment"]


def _open_training_view(browser, url: str) -> None:
    """MLflow 3 opens on its GenAI view; a transfer pipeline's runs are under "Model training"."""
    browser.get(url)
    click(browser, by_text("Model training"))


def _dismiss_dialogs(browser) -> None:
    """The registry greets a new browser profile with a dialog about its next UI; close it."""
    from selenium.common.exceptions import TimeoutException

    close = "//div[@role='dialog']//button[@aria-label='Close']"
    try:
        click(browser, close, timeout=15)
    except TimeoutException:
        return  # none came
    wait(browser, lambda d: not any(e.is_displayed() for e in d.find_elements(By.XPATH, "//div[@role='dialog']")),
         message="the registry's dialog did not close")


def test_the_pipeline_run_holds_one_nested_run_per_stage(pipeline, mlflow_ui, store, browser):
    stages = stage_order(pipeline.project / "dvc.yaml")
    assert len(stages) == 7  # prepare ... evaluate: dvc.yaml is the one stage list
    experiment = store.get_experiment_by_name(_experiment(pipeline))
    # The run of this pipeline (a later test adds a Prefect UI run to the same experiment).
    parent, = store.search_runs([experiment.experiment_id],
                                f"tags.`transferlab.role` = 'pipeline' and "
                                f"tags.`prefect.flow_run_id` = '{pipeline.flow_run_id}'")

    _open_training_view(browser, mlflow_ui.url)
    click(browser, by_text(experiment.name, "a"))
    name = visible(browser, by_text(parent.info.run_name, "a"))
    # Collapsed, the experiment shows the pipeline run alone: its stage runs are nested under it.
    shown = {e.text for e in browser.find_elements(By.XPATH, "//div[@role='row']//a") if e.is_displayed()}
    assert not shown & set(stages), shown
    name.find_element(By.XPATH, "./ancestor::*[@role='row'][1]//button").click()  # the row's expand toggle
    for stage in stages:
        visible(browser, "//div[@role='row']" + by_text(stage, "a"))
    rows = [e.text for e in browser.find_elements(By.XPATH, "//div[@role='row']//a") if e.text in stages]
    assert sorted(rows) == sorted(stages), rows  # each stage once


def test_the_registry_shows_the_champion_and_its_lineage(pipeline, mlflow_ui, store, browser):
    evaluation = pipeline.evaluation
    name = evaluation["registered_model"]
    aliases = store.get_registered_model(name).aliases
    assert "champion" in aliases, (f"the tiny run should earn the alias (no champion yet): {name} has "
                                   f"{aliases}; evaluate says {evaluation.get('champion_reason')}")
    version = str(aliases["champion"])
    assert version == str(evaluation["adapted_version"])

    _open_training_view(browser, mlflow_ui.url)
    click(browser, by_text("Model registry"))
    visible(browser, by_text(name, "a"))
    _dismiss_dialogs(browser)
    # The list of registered models names the aliased version; the model's page marks it in its table.
    row = visible(browser, f"//*[@role='row'][.//a[normalize-space(.)='{name}']]")
    assert "@ champion" in row.text.replace("\u00a0", " ") and f"Version {version}" in row.text, row.text
    click(browser, by_text(name, "a"))
    version_row = visible(browser, f"//*[@role='row'][.//a[normalize-space(.)='Version {version}']]")
    assert "@ champion" in version_row.text.replace("\u00a0", " "), version_row.text
    click(browser, by_text(f"Version {version}", "a"))
    visible(browser, "//*[@data-testid='descriptions-item-content'][.//*[@title='champion']]")

    # Lineage, each checked against its own source of truth rather than against MLflow itself.
    project = pipeline.project
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, env=env(), capture_output=True, text=True,
                          check=True).stdout.strip()
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    target_md5 = next(out["md5"] for out in lock["prepare"]["outs"] if out["path"] == "data/prepared/target")
    expected = {"git.commit": head, "prefect.flow_run_id": pipeline.flow_run_id,
                "dvc.md5.data/prepared/target": target_md5, "verdict": evaluation["verdict"],
                "method": evaluation["method"]}
    for key, value in expected.items():
        cell = visible(browser, f"//tr[@data-row-key='{key}']")
        assert value in cell.text, (key, value, cell.text)
    assert "Traceback" not in page_text(browser)
