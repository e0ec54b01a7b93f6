"""The sample GPU workflow: runs the gpu tests with the plugin, reports against a per-GPU
baseline, uploads the report whatever happened; every shell step is valid bash."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML (a transformers dependency) is needed to read the workflow")

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "gpu-nightly.yml"


@pytest.fixture(scope="module")
def steps():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    (job,) = workflow["jobs"].values()
    return job["steps"]


def step_running(steps, text):
    (step,) = [s for s in steps if text in s.get("run", "")]
    return step


def test_gpu_tests_write_results_and_do_not_stop_the_job(steps):
    step = step_running(steps, "pytest -m gpu")
    assert "--results-json results/results.json" in step["run"] and step["continue-on-error"] is True


def test_report_compares_with_a_baseline_and_fails_on_regression(steps):
    step = step_running(steps, "awq-harness report")
    assert "--baseline" in step["run"] and "--fail-on-regression" in step["run"] and step["if"] == "always()"


def test_report_is_uploaded_even_when_tests_fail(steps):
    (upload,) = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
    assert upload["if"] == "always()" and upload["with"]["path"] == "results/"


def test_baselines_are_kept_per_gpu_and_only_promoted_from_good_runs(steps):
    caches = [s for s in steps if s.get("uses", "").startswith("actions/cache/save")]
    (baseline,) = [s for s in caches if s["with"]["path"] == "baseline"]
    assert "steps.gpu.outputs.slug" in baseline["with"]["key"]
    assert "steps.tests.outcome == 'success'" in baseline["if"]
    assert "steps.report.outcome == 'success'" in baseline["if"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_every_run_block_is_valid_bash(steps):
    for step in (s for s in steps if "run" in s):
        script = re.sub(r"\$\{\{[^}]*\}\}", "x", step["run"])
        checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
        assert checked.returncode == 0, f"{step.get('name')}: {checked.stderr}"
