"""awq-harness report: from results files on disk to an HTML file."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from report_helpers import run_report
from report_samples import good_run, inject_regression, next_run

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def result_files(tmp_path):
    files = {}
    for name, doc in (("base", good_run()), ("night2", next_run()), ("night3", inject_regression(next_run()))):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(doc))
    return files


def test_report_written_and_path_printed(result_files, tmp_path, capsys):
    out = tmp_path / "site" / "report.html"
    status = run_report(str(result_files["night2"]), str(result_files["night3"]),
                        "--baseline", str(result_files["base"]), "--out", str(out))
    printed = capsys.readouterr().out
    assert status == 0
    assert f"report: {out.resolve()}" in printed and "REGRESSED: 3 regressions" in printed
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_fail_on_regression_sets_exit_status(result_files, tmp_path):
    common = ["--baseline", str(result_files["base"]), "--out", str(tmp_path / "r.html"), "--fail-on-regression"]
    assert run_report(str(result_files["night3"]), *common) == 1
    assert run_report(str(result_files["night2"]), *common) == 0


def test_thresholds_come_from_options(result_files, tmp_path, capsys):
    run_report(str(result_files["night3"]), "--baseline", str(result_files["base"]), "--out",
               str(tmp_path / "r.html"), "--speed-band", "0.5", "--ppl-delta", "0.2")
    assert "REGRESSED: 1 regression against" in capsys.readouterr().out


def test_console_script_reports_malformed_file_in_one_line(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"schema": "awq-harness-results", "schema_version": 1}')
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    # The console script's main(), with only this subcommand loaded, so that another
    # subcommand's import problem cannot hide (or cause) a failure here.
    entry_point = ("import sys, awq_ref.cli as cli; cli.SUBCOMMANDS = ('report',); "
                   "sys.exit(cli.main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", entry_point, "report", str(bad), "--out", str(tmp_path / "r.html")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f'awq-harness report: error: {bad}: "run" must be an object\n'
    assert not (tmp_path / "r.html").exists()
