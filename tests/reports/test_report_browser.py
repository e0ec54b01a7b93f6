"""The report in a real browser: headless Chromium through ChromeDriver.

Skips with a reason where Chromium is absent (``.ci/install-chromium`` installs it); set
AWQ_HARNESS_REQUIRE_BROWSER=1 (CI does) to make that a failure instead. The screenshot is
written to $AWQ_HARNESS_ARTIFACTS (default: pytest's temporary folder) and its path printed.
"""
import json
import os
from pathlib import Path

import pytest
from report_samples import good_run, inject_regression, next_run

from awq_harness.reports.browser import Browser, find_browser
from awq_harness.reports.render import render_report
from awq_harness.reports.schema import load_results

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def browser():
    found = find_browser()
    if found is None:
        reason = ("Chromium and ChromeDriver not found (Debian packages chromium, chromium-driver; "
                  "run .ci/install-chromium)")
        if os.environ.get("AWQ_HARNESS_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " but AWQ_HARNESS_REQUIRE_BROWSER=1")
        pytest.skip(reason)
    with Browser(*found) as opened:
        yield opened


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    folder = Path(os.environ.get("AWQ_HARNESS_ARTIFACTS") or tmp_path_factory.mktemp("report-browser"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def regressed_report(artifacts):
    paths = []
    for name, doc in (("baseline", good_run()), ("night2", next_run()), ("night3", inject_regression(next_run()))):
        paths.append(artifacts / f"results-{name}.json")
        paths[-1].write_text(json.dumps(doc))
    base, *runs = [load_results(p) for p in paths]
    page = artifacts / "report-regressed.html"
    page.write_text(render_report(runs, baseline=base).html)
    return page


def test_report_loads_without_console_errors_and_shows_key_elements(browser, regressed_report, artifacts):
    browser.open(regressed_report)
    assert browser.console_errors() == []
    assert browser.run_script("return document.title").startswith("awq-harness report: REGRESSED")
    (verdict,) = browser.visible_elements("#verdict")
    assert verdict["top"] < 200, "the verdict is at the top of the page"
    assert browser.run_script("return getComputedStyle(document.querySelector('#verdict')).backgroundColor") \
        == "rgb(179, 38, 30)"
    assert len(browser.visible_elements("table.regressions tbody tr")) == 3
    charts = browser.visible_elements("figure.chart svg")
    assert len(charts) == 9 and all(c["width"] >= 400 and c["height"] >= 200 for c in charts)
    assert len(browser.visible_elements("svg .flagged")) == 2
    shot = browser.screenshot(artifacts / "report-regressed.png")
    print(f"\nscreenshot: {shot}")
    data = shot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width == 1280 and height > 3000


def test_console_errors_are_caught(browser, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><p>x</p><script>undefinedFunction();</script></body></html>")
    browser.open(page)
    errors = browser.console_errors()
    assert any("undefinedFunction" in error for error in errors), errors


def test_hidden_elements_do_not_count_as_visible(browser, tmp_path):
    page = tmp_path / "hidden.html"
    page.write_text('<!DOCTYPE html><html><body><div id="a">shown</div><div id="b" style="display:none">x</div>'
                    '<div id="c" style="visibility:hidden">y</div></body></html>')
    browser.open(page)
    assert len(browser.visible_elements("#a")) == 1
    assert browser.visible_elements("#b") == [] and browser.visible_elements("#c") == []
