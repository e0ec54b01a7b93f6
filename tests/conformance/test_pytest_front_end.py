"""``pytest conformance --checkpoint PATH``: one item per rule, junit XML, exit codes; the
project's default run (testpaths = tests) never loads the conformance plugin."""
from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from conformance import RULES

ROOT = Path(__file__).resolve().parents[2]


def _pytest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_each_rule_is_an_item_and_bad_checkpoints_fail(built, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(built["gemm"], bad)
    (bad / "config.json").write_text("[]")
    good_xml, bad_xml = tmp_path / "good.xml", tmp_path / "bad.xml"
    good = _pytest("conformance", "--checkpoint", str(built["gemm"]), f"--junitxml={good_xml}")
    assert good.returncode == 0, good.stdout[-2000:]
    cases = ET.parse(good_xml).getroot().iter("testcase")
    assert {c.get("name") for c in cases} == {f"test_rule[{r}]" for r in RULES}
    failed = _pytest("conformance", "--checkpoint", str(bad), f"--junitxml={bad_xml}")
    assert failed.returncode == 1
    failures = [c.get("name") for c in ET.parse(bad_xml).getroot().iter("testcase") if c.find("failure") is not None]
    assert failures == ["test_rule[config.present]"]


def test_default_run_does_not_load_the_plugin():
    assert "--checkpoint" not in _pytest("--help").stdout
    assert "--checkpoint" in _pytest("conformance", "--help").stdout
