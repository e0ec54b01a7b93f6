"""reports.render: the HTML page (self-contained, verdict first, charts and tables present)."""
import json
import re
from html.parser import HTMLParser

import pytest
from report_samples import NEW_FINDING_RULE, good_run, inject_regression, next_run

from awq_harness.reports.render import render_report
from awq_harness.reports.schema import load_results


def saved(tmp_path, name, document):
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return load_results(path)


@pytest.fixture
def regressed_page(tmp_path):
    runs = [saved(tmp_path, "2.json", next_run()), saved(tmp_path, "3.json", inject_regression(next_run()))]
    return render_report(runs, baseline=saved(tmp_path, "1.json", good_run()))


class ExternalReferences(HTMLParser):
    """Collects every attribute that would make the browser fetch something."""

    def __init__(self):
        super().__init__()
        self.fetches = []
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "data", "poster", "srcset") and value and not value.startswith("#"):
                self.fetches.append((tag, name, value))


def test_page_is_self_contained(regressed_page):
    parser = ExternalReferences()
    parser.feed(regressed_page.html)
    assert parser.fetches == []
    assert "link" not in parser.tags and "@import" not in regressed_page.html
    assert not re.search(r"url\(", regressed_page.html)


def test_verdict_comes_first_and_names_the_regressions(regressed_page):
    html = regressed_page.html
    assert regressed_page.regressed
    assert html.index('id="verdict"') < html.index('id="regressions"') < html.index('id="kernels"')
    assert "REGRESSED: 3 regressions against the baseline" in html
    assert "more than 10% below the baseline" in html and "more than 1.0% above" in html


def test_every_chart_family_is_drawn(regressed_page):
    ids = set(re.findall(r'<figure class="chart" id="chart-([^"]+)"', regressed_page.html))
    assert {"speedup-gemv-128", "speedup-gemm-64", "perplexity", "calibration", "layers-smollm2-135m",
            "trend-ppl", "trend-speedup"} <= ids
    assert regressed_page.html.count("<svg") == len(ids)


def test_regressed_points_are_marked_in_the_charts(regressed_page):
    assert regressed_page.html.count('<circle cx=') > 100
    assert len(re.findall(r'class="flagged"', regressed_page.html)) == 2  # one kernel point, one ppl bar
    assert NEW_FINDING_RULE in regressed_page.html and 'class="badge">new' in regressed_page.html


def test_bound_line_is_dashed_and_in_the_legend(regressed_page):
    assert 'stroke-dasharray="6 4"' in regressed_page.html
    assert "roofline bound" in regressed_page.html


def test_verdicts_without_baseline_and_when_clean(tmp_path):
    lone = render_report([saved(tmp_path, "a.json", good_run())])
    assert lone.verdict.status == "no-baseline" and not lone.regressed
    clean = render_report([saved(tmp_path, "b.json", next_run())], baseline=saved(tmp_path, "a.json", good_run()))
    assert clean.verdict.status == "ok" and "OK: no regressions" in clean.html


def test_failing_tests_make_a_failing_verdict(tmp_path):
    doc = good_run()
    doc["tests"][0]["outcome"] = "error"
    page = render_report([saved(tmp_path, "a.json", doc)])
    assert page.verdict.status == "failing" and doc["tests"][0]["nodeid"] in page.html


def test_empty_run_renders(tmp_path):
    doc = good_run()
    doc["sections"] = {}
    doc["tests"] = []
    page = render_report([saved(tmp_path, "a.json", doc)])
    assert "No kernel speed-ups recorded" in page.html and "<svg" not in page.html


def test_text_from_results_is_escaped(tmp_path):
    doc = good_run()
    doc["sections"]["findings"][0]["message"] = "<script>alert(1)</script>"
    page = render_report([saved(tmp_path, "a.json", doc)])
    assert "<script>" not in page.html and "&lt;script&gt;" in page.html
