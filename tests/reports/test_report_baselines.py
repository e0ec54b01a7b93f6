"""reports.baselines and reports.metadata.device_slug: one name per GPU, one baseline file per name."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from report_samples import good_run

from awq_harness.reports.baselines import (
    BASELINE_DIR,
    REPO_ROOT,
    baseline_path,
    load_baseline,
    main,
    pin,
    write_section,
)
from awq_harness.reports.metadata import device_slug
from awq_harness.reports.schema import ResultsError, load_results


@pytest.mark.parametrize("name,slug", [
    ("NVIDIA A10", "nvidia-a10"),
    ("NVIDIA L4", "nvidia-l4"),
    ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3"),
    ("NVIDIA A100-SXM4-40GB", "nvidia-a100-sxm4-40gb"),
    ("  Tesla T4\n", "tesla-t4"),
    ("NVIDIA GeForce RTX 4090 (laptop)", "nvidia-geforce-rtx-4090-laptop"),
])
def test_slug_is_lower_case_with_single_dashes(name, slug):
    assert device_slug(name) == slug


def test_slug_refuses_a_name_without_letters_or_digits():
    with pytest.raises(ValueError, match="no letter or digit"):
        device_slug(" -- ")


def test_baseline_path_follows_the_slug():
    assert baseline_path("NVIDIA A10") == BASELINE_DIR / "nvidia-a10.json"
    assert BASELINE_DIR.parent == REPO_ROOT


def test_write_section_keeps_the_other_sections_and_names_the_gpu(tmp_path):
    pin_file = tmp_path / "run.json"
    pin_file.write_text(json.dumps(good_run()))
    path = pin(pin_file, "NVIDIA A10", tmp_path)
    assert path == tmp_path / "nvidia-a10.json"
    entry = {"kernel": "gemv", "shape": "s", "batch": 1, "speedup": 2.5, "bound": 3.8, "group_size": 128}
    write_section("NVIDIA A10", "kernel_speedups", [entry], tmp_path)
    baseline = load_baseline("NVIDIA A10", tmp_path)
    assert baseline.sections["kernel_speedups"] == [entry]
    assert baseline.sections["perplexity"] == good_run()["sections"]["perplexity"]
    assert baseline.run["device"] == "NVIDIA A10"


def test_write_section_starts_a_new_file_and_checks_entries(tmp_path):
    with pytest.raises(ValueError, match="lacks required key"):
        write_section("NVIDIA L4", "kernel_speedups", [{"kernel": "gemv"}], tmp_path)
    assert not (tmp_path / "nvidia-l4.json").exists()
    write_section("NVIDIA L4", "perplexity", [], tmp_path)
    assert load_results(tmp_path / "nvidia-l4.json").run["device"] == "NVIDIA L4"


def test_a_broken_baseline_is_neither_read_nor_rewritten(tmp_path):
    (tmp_path / "nvidia-a10.json").write_text("{")
    with pytest.raises(ResultsError, match="nvidia-a10.json: not valid JSON"):
        load_baseline("NVIDIA A10", tmp_path)
    with pytest.raises(ResultsError):
        write_section("NVIDIA A10", "perplexity", [], tmp_path)
    assert (tmp_path / "nvidia-a10.json").read_text() == "{"


def test_cli_prints_slug_and_path(capsys):
    assert main(["slug", "NVIDIA A10"]) == 0 and main(["path", "NVIDIA A10"]) == 0
    assert capsys.readouterr().out.splitlines() == ["nvidia-a10", "baselines/nvidia-a10.json"]
    assert main(["slug", "..."]) == 2
    assert "no letter or digit" in capsys.readouterr().err


def test_cli_runs_as_a_module():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-m", "awq_harness.reports.baselines", "slug", "NVIDIA L4"], cwd=Path(REPO_ROOT),  # noqa: E501 - the awq_harness prefix
                          env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "nvidia-l4\n"), done.stderr
