"""``awq-harness report RESULTS... [--baseline BASE] --out report.html``.

Reads saved results files only (never runs a model or a kernel) and writes one
self-contained HTML page: verdict, regressions against the baseline, tables and charts.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from awq_harness.reports.compare import Thresholds
from awq_harness.reports.render import render_report
from awq_harness.reports.schema import load_results


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("report", help="build an HTML regression report from saved results",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", metavar="RESULTS",
                        help="results JSON files (pytest --results-json); the newest is the run reported, "
                             "all of them make the trend")
    parser.add_argument("--baseline", metavar="BASE", help="results JSON of the last good run to compare with")
    parser.add_argument("--out", required=True, metavar="HTML", help="where to write the report")
    defaults = Thresholds()
    parser.add_argument("--speed-band", type=float, default=defaults.speed_band,
                        help="flag a kernel speed-up outside this share of its baseline, either way (faster means a "
                             "stale baseline; default %(default)s)")
    parser.add_argument("--ppl-delta", type=float, default=defaults.ppl_delta,
                        help="flag a perplexity that rose by more than this share (default %(default)s)")
    parser.add_argument("--bench-band", type=float, default=defaults.bench_band,
                        help="flag a benchmark median that grew by more than this share (default %(default)s)")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help="exit with status 1 when the report flags a regression")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    runs = [load_results(path) for path in args.results]
    baseline = load_results(args.baseline) if args.baseline else None
    thresholds = Thresholds(args.speed_band, args.ppl_delta, args.bench_band)
    report = render_report(runs, baseline, thresholds)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.html, encoding="utf-8")
    print(f"report: {out.resolve()}")
    print(report.verdict.headline)
    return 1 if report.regressed and args.fail_on_regression else 0
