"""pytest plugin: ``--results-json PATH`` writes the run's results file at session end.

It activates a ``reports.collect.Collector`` for the whole session, so every
``record(...)`` made by library or test code lands in the file, together with run
metadata, each test's outcome and the stats of pytest-benchmark tests. The file is written
when tests fail too. Under pytest-xdist each worker sends its records to the controller
(``workeroutput``), which alone writes the file. Records made in child processes arrive
through a spool folder (``reports.collect.SPOOL_ENV``).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from awq_harness.reports import collect
from awq_harness.reports.metadata import run_metadata
from awq_harness.reports.schema import build_document, write_results

WORKER_OUTPUT_KEY = "awq_harness_results"
BENCHMARK_STATS = ("min", "max", "mean", "median", "stddev", "iqr", "ops", "rounds")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("awq-harness reports")
    group.addoption("--results-json", metavar="PATH", default=None,
                    help="write the run's results (metadata, outcomes, benchmarks, recorded "
                         "sections) to PATH at session end, for `awq-harness report`")


def pytest_configure(config: pytest.Config) -> None:
    option = config.getoption("results_json", default=None)
    if option:
        path = writable_target(Path(config.invocation_params.dir) / option)
        config.pluginmanager.register(ResultsJsonWriter(config, str(path)), "awq-harness-results-json")


def writable_target(path: Path) -> Path:
    """``path`` made absolute, its folder created; a UsageError now rather than a lost file later."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise pytest.UsageError(f"--results-json {path}: cannot create its folder ({err.strerror})") from None
    if path.is_dir() or not os.access(path.parent, os.W_OK):
        raise pytest.UsageError(f"--results-json {path}: not a writable file path")
    return path.resolve()


class ResultsJsonWriter:
    def __init__(self, config: pytest.Config, path: str) -> None:
        self.config = config
        self.path = path
        self.is_worker = hasattr(config, "workerinput")
        self.collector = collect.Collector()
        self.outcomes: dict[str, dict[str, Any]] = {}
        self.started = time.monotonic()
        self.spool: Path | None = None
        self.previous_spool = os.environ.get(collect.SPOOL_ENV)
        if not self.is_worker:
            self.spool = Path(tempfile.mkdtemp(prefix="awq-harness-spool-"))
            os.environ[collect.SPOOL_ENV] = str(self.spool)
        collect.activate(self.collector)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        self.collector.current_test = item.nodeid
        try:
            return (yield)
        finally:
            self.collector.current_test = None

    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> None:
        if call.when == "call":
            record_benchmark(getattr(item, "funcargs", {}).get("benchmark"))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.is_worker:
            self._note(report.nodeid, outcome_of(report), report.duration)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and not self.is_worker:
            self._note(report.nodeid or "<collection>", "error", 0.0)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        sent = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
        if sent:
            self.collector.extend(json.loads(sent))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        collect.deactivate()
        if self.is_worker:
            self.config.workeroutput[WORKER_OUTPUT_KEY] = json.dumps(self.collector.sections)
            return
        self._merge_spool()
        write_results(self.path, build_document(self._run(int(exitstatus)), list(self.outcomes.values()),
                                                self.collector.sections))

    def _merge_spool(self) -> None:
        if self.previous_spool is None:
            os.environ.pop(collect.SPOOL_ENV, None)
        else:
            os.environ[collect.SPOOL_ENV] = self.previous_spool
        self.collector.extend(collect.read_spool(self.spool))
        shutil.rmtree(self.spool, ignore_errors=True)

    def _note(self, nodeid: str, outcome: str | None, duration: float) -> None:
        entry = self.outcomes.setdefault(nodeid, {"nodeid": nodeid, "outcome": "passed", "duration_s": 0.0})
        entry["duration_s"] = round(entry["duration_s"] + duration, 6)
        if outcome is not None:
            entry["outcome"] = outcome

    def _run(self, exitstatus: int) -> dict[str, Any]:
        run = run_metadata(self.config.rootpath)
        run.update(pytest_args=list(self.config.invocation_params.args),
                   markexpr=self.config.getoption("markexpr", default="") or "",
                   exitstatus=exitstatus, duration_s=round(time.monotonic() - self.started, 3))
        return run


def outcome_of(report: pytest.TestReport) -> str | None:
    """The outcome one phase decides, or None when the phase changes nothing."""
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if xfail:
            return "xfailed" if report.skipped else "xpassed"
        return report.outcome
    if report.failed:
        return "error"
    if report.skipped:
        return "xfailed" if xfail else "skipped"
    return None


def record_benchmark(fixture: Any) -> None:
    """Record the stats of a pytest-benchmark fixture that ran (seconds per round)."""
    metadata = getattr(fixture, "stats", None)
    if not metadata or not getattr(metadata, "stats", None):
        return
    stats = {name: getattr(metadata.stats, name) for name in BENCHMARK_STATS}
    collect.record("benchmarks", {"name": metadata.fullname, "group": metadata.group,
                                  "param": metadata.param, "unit": "s", **stats,
                                  "extra_info": dict(metadata.extra_info or {})})
