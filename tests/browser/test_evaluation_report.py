"""The page to read before shipping, reports/evaluation/evaluation.html, as a browser shows it (file://):
the verdict and the accuracy of every model on the target test split, matching reports/evaluation.json."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests.browser.web import page_text, requires_chromium, visible

pytestmark = [pytest.mark.e2e, pytest.mark.browser, requires_chromium]


def test_report_shows_the_verdict_and_the_accuracy_table(pipeline, browser):
    evaluation = pipeline.evaluation
    page = pipeline.project / "reports" / "evaluation" / "evaluation.html"
    browser.get(page.as_uri())
    assert f"Transfer evaluation on {evaluation['target']}" in browser.title

    # The verdict is the headline, styled by its label (green, amber or red), and says it in words.
    verdict = visible(browser, "//*[contains(concat(' ', normalize-space(@class), ' '), ' verdict ')]")
    assert evaluation["verdict"] in verdict.get_attribute("class").split()
    says = {"positive-transfer": "SHIP", "no-significant-difference": "HOLD", "negative-transfer": "DO NOT SHIP"}
    assert verdict.text.startswith(says[evaluation["verdict"]]), verdict.text
    assert evaluation["gain"]["verdict"]["sentence"] in page_text(browser)  # the gain, its CI and its baseline

    # The accuracy table: one row per model, the chosen method first, each with the accuracy that
    # evaluation.json records (percent, one decimal), read cell by cell as rendered.
    table = visible(browser, "//table[.//th[contains(., 'accuracy')]]")
    headers = [th.text.strip().lower() for th in table.find_elements(By.TAG_NAME, "th")]
    column = next(i for i, h in enumerate(headers) if "accuracy" in h)
    rows = {tr.find_elements(By.TAG_NAME, "td")[0].text: [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in table.find_elements(By.XPATH, ".//tr[td]")}
    assert len(rows) == len(evaluation["models"]), rows
    for name, model in evaluation["models"].items():
        row = next((cells for label, cells in rows.items() if label.split()[0] == name), None)
        assert row is not None, f"no row for {name} in {list(rows)}"
        assert row[column].startswith(f"{100 * model['accuracy_mean']:.1f}"), (name, row)
    chosen = next(label for label in rows if label.split()[0] == evaluation["chosen"])
    assert "chosen" in chosen and list(rows)[0] == chosen

    # The figures the page embeds render (an image that failed to load has no natural width).
    images = browser.find_elements(By.TAG_NAME, "img")
    assert images and all(browser.execute_script("return arguments[0].naturalWidth", img) > 0 for img in images)
    assert "Traceback" not in page_text(browser)
