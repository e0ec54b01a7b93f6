"""Helpers for the report tests: a scratch pytest run with the plugin, the report subcommand."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

from awq_harness.awq_ref.cli import report
from awq_harness.reports.collect import SPOOL_ENV

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_pytest(project: Path, test_source: str, *args: str, env_extra: dict | None = None,
               ) -> subprocess.CompletedProcess:
    (project / "conftest.py").write_text('pytest_plugins = ["awq_harness.reports.plugin"]\n')
    (project / "test_sample.py").write_text(test_source)
    # A clean child: none of this run's spool or xdist worker variables leak into it.
    env = {name: value for name, value in os.environ.items()
           if name != SPOOL_ENV and not name.startswith(("PYTEST_XDIST", "PYTEST_CURRENT"))}
    env.update(PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1", **(env_extra or {}))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(project), *args]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=240)


def run_report(*argv: str) -> int:
    """``awq-harness report ARGV...`` through the subcommand's own parser; returns the status."""
    parser = argparse.ArgumentParser()
    report.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", *argv])
    return args.func(args)
