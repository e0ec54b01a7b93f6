"""Render saved results (and an optional baseline) into one self-contained HTML page."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from awq_harness.reports import compile_check, figures, runtime_matrix
from awq_harness.reports.compare import (
    FINDING_KEY,
    KERNEL_KEY,
    PERPLEXITY_KEY,
    QUALITY_KEY,
    Comparison,
    Thresholds,
    compare,
    key_of,
)
from awq_harness.reports.schema import Results

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Verdict:
    status: str      # "regressed" | "failing" | "ok" | "no-baseline"
    headline: str
    detail: str


@dataclass(frozen=True)
class Report:
    html: str
    verdict: Verdict

    @property
    def regressed(self) -> bool:
        return self.verdict.status == "regressed"


def render_report(runs: list[Results], baseline: Results | None = None,
                  thresholds: Thresholds | None = None) -> Report:
    """The page for the newest of ``runs`` (by date), compared with ``baseline`` if given."""
    thresholds = thresholds or Thresholds()
    ordered = sorted(runs, key=lambda r: str(r.run["date"]))
    current = ordered[-1]
    comparison = compare(current, baseline, thresholds) if baseline else None
    context = {
        "current": current, "baseline": baseline, "runs": ordered, "comparison": comparison,
        "thresholds": thresholds, "verdict": verdict(current, comparison),
        "counts": current.outcome_counts(), "failing": _failing_tests(current),
        "speedups": _with_baseline(current, baseline, comparison, "kernel_speedups", KERNEL_KEY, "speedup"),
        "perplexities": _with_baseline(current, baseline, comparison, "perplexity", PERPLEXITY_KEY, "ppl"),
        "findings": _findings(current, baseline),
        "quality": _with_baseline(current, baseline, comparison, "quality", QUALITY_KEY, "kld_mean"),
        "claims": current.sections["claims"],
        "sensitivity": sorted(current.sections["sensitivity"], key=lambda e: -float(e["score"])),
        "trend_runs": _trend_runs(ordered, baseline),
        "compile_check": compile_check.view(current.sections.get("compile_check", [])),
        "runtime_matrix": runtime_matrix.view(current.sections.get("runtime_matrix", [])),
    }
    context["charts"] = _charts(current, context["trend_runs"], comparison)
    return Report(_environment().get_template("report.html.j2").render(**context), context["verdict"])


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = format_value
    return env


def format_value(value: Any) -> str:
    """Table cell text: numbers to 4 significant digits, missing values as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def verdict(current: Results, comparison: Comparison | None) -> Verdict:
    failing = sum(1 for t in current.tests if t["outcome"] in ("failed", "error"))
    if comparison and comparison.regressions:
        count = len(comparison.regressions)
        return Verdict("regressed", f"REGRESSED: {count} regression{'s' * (count != 1)} against the baseline",
                       f"baseline {comparison.baseline_label}; {failing} failing test(s) in this run")
    if failing:
        return Verdict("failing", f"FAILING: {failing} test(s) failed or errored",
                       "no regression against the baseline" if comparison else "no baseline given")
    if comparison is None:
        return Verdict("no-baseline", "NO BASELINE: this run passed; nothing to compare it with",
                       "pass --baseline to flag regressions")
    return Verdict("ok", "OK: no regressions against the baseline", f"baseline {comparison.baseline_label}")


def _failing_tests(current: Results) -> list[dict[str, Any]]:
    return [t for t in current.tests if t["outcome"] in ("failed", "error")]


def _with_baseline(current: Results, baseline: Results | None, comparison: Comparison | None, section: str,
                   fields: tuple[str, ...], metric: str) -> list[dict[str, Any]]:
    """Current entries with ``baseline_value`` (None when the baseline lacks it) and ``regressed``."""
    before = {key_of(e, fields): e.get(metric) for e in baseline.sections[section]} if baseline else {}
    flagged = comparison.regressed_keys(section) if comparison else set()
    return [dict(entry, baseline_value=before.get(key_of(entry, fields)), regressed=key_of(entry, fields) in flagged)
            for entry in current.sections[section]]


def _findings(current: Results, baseline: Results | None) -> list[dict[str, Any]]:
    known = {key_of(f, FINDING_KEY) for f in baseline.sections["findings"]} if baseline else set()
    return [dict(f, is_new=bool(baseline) and key_of(f, FINDING_KEY) not in known)
            for f in current.sections["findings"]]


def _trend_runs(runs: list[Results], baseline: Results | None) -> list[Results]:
    """The runs by date, with the baseline among them unless it is one of the files given."""
    paths = {Path(r.path).resolve() for r in runs}
    extra = [baseline] if baseline and Path(baseline.path).resolve() not in paths else []
    return sorted(runs + extra, key=lambda r: str(r.run["date"]))


def _charts(current: Results, trend_runs: list[Results], comparison: Comparison | None) -> dict[str, list]:
    def regressed(section: str) -> set[tuple]:
        return comparison.regressed_keys(section) if comparison else set()

    def present(*charts):
        return [chart for chart in charts if chart]
    return {
        "speedups": figures.speedup_charts(current, regressed("kernel_speedups")),
        "perplexity": present(figures.perplexity_chart(current, regressed("perplexity"))),
        "layers": figures.layer_error_charts(current),
        "calibration": present(figures.calibration_chart(current, regressed("calibration_curve"))),
        "trend": figures.trend_charts(trend_runs),
    }
