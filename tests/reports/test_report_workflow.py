"""The sample GPU workflow: runs the gpu tests with the plugin, reports against a per-GPU
baseline, uploads the report whatever happened; every shell step is valid bash; the GPU is
named by the same function as the code's baseline files."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from awq_harness.reports.baselines import REPO_ROOT, baseline_path
from awq_harness.reports.metadata import device_slug

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


def gpu_name_step(steps):
    (step,) = [s for s in steps if s.get("id") == "gpu"]
    return step


def test_gpu_is_named_by_the_shared_slug_not_by_shell(steps):
    script = gpu_name_step(steps)["run"]
    assert "reports.baselines slug" in script and "reports.baselines path" in script
    assert not re.search(r"\btr\b|\bsed\b|\bawk\b", script), "the workflow must not make its own slug"


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize("gpu", ["NVIDIA A10", "NVIDIA H100 80GB HBM3"])
def test_workflow_and_code_give_the_gpu_the_same_name(steps, tmp_path, gpu):
    """Run the naming step with a stand-in nvidia-smi and compare its outputs with the code's."""
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text(f'#!/usr/bin/env bash\nif [ $# -gt 0 ]; then echo "{gpu}"; echo "other GPU"; fi\n')
    smi.chmod(0o755)
    outputs = tmp_path / "github_output"
    script = gpu_name_step(steps)["run"].replace(".venv/bin/python", sys.executable)
    env = {**os.environ, "PATH": f"{smi.parent}{os.pathsep}{os.environ['PATH']}", "GITHUB_OUTPUT": str(outputs),
           "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(["bash", "-e", "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    named = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert named == {"slug": device_slug(gpu), "baseline": baseline_path(gpu).relative_to(REPO_ROOT).as_posix()}


def test_report_prefers_the_committed_baseline_the_code_reads(steps):
    script = step_running(steps, "awq-harness report")["run"]
    assert '[ -f "${{ steps.gpu.outputs.baseline }}" ]' in script
    assert script.index("steps.gpu.outputs.baseline") < script.index("baseline/results.json")
