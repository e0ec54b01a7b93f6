"""The pytest plugin (conformance/plugin.py): ``pytest --checkpoint CKPT`` makes one item per
rule, junit XML and exit codes follow the findings, and in an unrelated
project it registers the markers without importing torch."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from awq_harness.conformance import RULES

ROOT = Path(__file__).resolve().parents[2]
UNRELATED_TEST = '''
import sys

import pytest


@pytest.mark.slow
def test_plugin_left_torch_alone():
    assert "torch" not in sys.modules and "awq_harness.conformance.runner" not in sys.modules
'''


def _pytest(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _cases(xml: Path) -> dict[str, bool]:
    """test name -> failed"""
    return {c.get("name"): c.find("failure") is not None for c in ET.parse(xml).getroot().iter("testcase")}


def test_each_rule_is_an_item_and_bad_checkpoints_fail(built, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(built["gemm"], bad)
    (bad / "config.json").write_text("[]")
    good_xml, bad_xml = tmp_path / "good.xml", tmp_path / "bad.xml"
    good = _pytest(f"--checkpoint={built['gemm']}", f"--junitxml={good_xml}")
    assert good.returncode == 0, good.stdout[-2000:] + good.stderr[-2000:]
    assert set(_cases(good_xml)) == {f"test_rule[{r}]" for r in RULES}
    failed = _pytest("conformance", f"--checkpoint={bad}", f"--junitxml={bad_xml}")
    assert failed.returncode == 1
    assert [name for name, failed in _cases(bad_xml).items() if failed] == ["test_rule[config.present]"]


def test_without_checkpoint_the_plugin_only_registers_options_and_markers(tmp_path):
    (tmp_path / "test_unrelated.py").write_text(UNRELATED_TEST)
    done = _pytest("-p", "awq_harness.conformance.plugin", "--strict-markers", "-p", "no:randomly", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "1 passed" in done.stdout
    assert "--checkpoint" in _pytest("-p", "awq_harness.conformance.plugin", "--help", cwd=tmp_path).stdout


def test_remote_checkpoint_and_reference(tmp_path, monkeypatch):
    """``pytest --checkpoint=URL --reference=URL``: a golden and its float model over HTTP, the
    reference and functional rules run (not skipped) and pass."""
    from awq_harness.golden.specs import BY_NAME
    from tests.conformance.helpers import save_float_reference
    from tests.conformance.http_server import serve

    name = "llama-gemm-g64-awq"
    shutil.copytree(ROOT / "golden" / "checkpoints" / name, tmp_path / "served" / "ck")
    save_float_reference(tmp_path / "served" / "ref", BY_NAME[name].family, BY_NAME[name].seed)
    monkeypatch.setenv("AWQ_HARNESS_REMOTE_CACHE", str(tmp_path / "cache"))
    xml = tmp_path / "remote.xml"
    with serve(tmp_path / "served") as (url, server):
        done = _pytest(f"--checkpoint={url}ck/", f"--reference={url}ref/", f"--junitxml={xml}", cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    cases = {c.get("name"): c for c in ET.parse(xml).getroot().iter("testcase")}
    for rule in ("reference.error", "functional.perplexity"):
        assert not list(cases[f"test_rule[{rule}]"]), f"{rule} was skipped or failed"
    assert any(path.startswith("/ref/") for _, path, _ in server.log)
