"""Fixtures of the browser tests: one real pipeline run shared by every test of the session (the
report, the MLflow UI and, last, the Prefect UI, whose custom run re-runs only its cheapest stage on top
of it), a fresh headless Chromium per test, and a screenshot of the page when a test fails."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser.web import MISSING, REQUIRED, SHOTS, chromium
from tests.e2e.project import BIN, TINY, env, make_project


@dataclass
class Pipeline:
    project: Path
    prefect_home: Path
    flow_run_id: str  # the Prefect flow run of `transferlab run`, from its server's database
    evaluation: dict  # reports/evaluation.json as that run left it
    seconds: float


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> Pipeline:
    """`transferlab run` on the tiny project of the e2e tests, as `make run` does (its own temporary
    Prefect server, the project's sqlite MLflow store)."""
    if MISSING:  # a skipped (or, in CI, failed) test must not pay for a pipeline run first
        (pytest.fail if REQUIRED else pytest.skip)(f"{' and '.join(MISSING)} not found")
    root = tmp_path_factory.mktemp("browser")
    # The registry test needs a version that earns `champion`: a significant gain on the promotion
    # hold-out, which the e2e project's 120 test samples (36 held out) are too few to show.
    params = {**TINY, "data": {**TINY["data"], "target": {"name": "uci-digits", "max_samples": 1200}},
              "evaluate": {**TINY["evaluate"], "promotion_share": 0.5}}
    project = make_project(root / "proj", params)
    home = root / "prefect-home"
    run_env = {**env(), "PREFECT_HOME": str(home)}
    run_env.pop("PREFECT_API_URL", None)
    started = time.monotonic()
    proc = subprocess.run([str(BIN / "transferlab"), "run"], cwd=project, env=run_env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    with sqlite3.connect(home / "prefect.db") as db:
        (flow_run_id,), = db.execute("SELECT id FROM flow_run").fetchall()
    return Pipeline(project, home, flow_run_id, json.loads((project / "reports/evaluation.json").read_text()),
                    time.monotonic() - started)


@pytest.fixture
def browser(tmp_path):
    driver = chromium(tmp_path / "chromium-profile")
    yield driver
    driver.quit()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure: a screenshot and the HTML of the page the browser was on, and the tail of each
    server's log, named in the test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    driver = item.funcargs.get("browser")
    if driver is not None:
        try:
            SHOTS.mkdir(parents=True, exist_ok=True)
            stem = SHOTS / f"{item.name}-{time.strftime('%H%M%S')}"
            driver.save_screenshot(f"{stem}.png")
            Path(f"{stem}.html").write_text(driver.page_source)
            report.sections.append(("browser", f"page {driver.current_url}\nscreenshot {stem}.png, HTML {stem}.html"))
        except Exception as error:  # noqa: BLE001 - a dead browser must not hide the test's own failure
            report.sections.append(("browser", f"no screenshot: {error}"))
    for name, value in item.funcargs.items():
        for server in (value if isinstance(value, (list, tuple)) else [value]):
            if hasattr(server, "log_tail"):
                report.sections.append((f"{server.name} log ({name})", server.log_tail()))


def pytest_collection_modifyitems(config, items):
    """The Prefect UI test re-runs a stage of the shared project and leaves an override in its params:
    it goes last, whatever order the files were named in."""
    last = [i for i in items if Path(str(i.fspath)) == Path(__file__).parent / "test_prefect_ui.py"]
    items[:] = [i for i in items if i not in last] + last
