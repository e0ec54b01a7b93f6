"""The distribution: one import name (``awq_harness``) in the wheel, imports that never load a
folder under its bare name, and (slow) the pip-install path end to end: sdist and wheel built,
the wheel installed in a fresh venv outside the repository beside Hugging Face's ``kernels``,
transformers and every harness command run there, ``pytest --checkpoint`` passing on a golden
and failing on a seeded defect with junit XML, and the plugin's cost in an unrelated project.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("awq_ref", "kernels", "conformance", "golden", "reports")
GOLDEN = ROOT / "golden" / "checkpoints" / "llama-gemm-g64-rtn"
COMMANDS = ("quantize", "eval", "verify", "convert", "report", "plan")
NOT_SOURCE = (".git", ".venv", ".tox", "runs", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis",
              ".benchmarks", ".ruff_cache", ".pytest_cache", "logs")
IMPORTS = """
import sys
import awq_harness.awq_ref.cli, awq_harness.conformance.runner, awq_harness.conformance.plugin
import awq_harness.reports.plugin, awq_harness.golden.specs, awq_harness.kernels
awq_harness.awq_ref.cli.build_parser()
print(sorted(m for m in sys.modules if m.split(".")[0] in {folders}))
""".format(folders=FOLDERS)


def _run(cmd: list[str], cwd: Path, timeout: int = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def _source(out: Path) -> Path:
    """The checkout without its local state, so a build writes no egg-info into the repository
    (one on sys.path would register the plugin's entry point in every later run)."""
    src = out / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    return src


def _wheel(out: Path) -> Path:
    done = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                 str(_source(out))], cwd=out, env=_clean_env())
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = out.glob("awq_harness-*.whl")
    return wheel


def test_imports_never_load_a_folder_under_its_bare_name():
    done = _run([sys.executable, "-c", IMPORTS], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"


def test_the_wheel_claims_one_import_name(tmp_path):
    wheel = zipfile.ZipFile(_wheel(tmp_path))
    names = wheel.namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"awq_harness"}
    assert {f"awq_harness/{f}/__init__.py" for f in FOLDERS} <= set(names)
    assert any(n.startswith("awq_harness/reports/templates/") for n in names)
    assert not any(n.startswith(("tests/", "awq_harness/tests/")) for n in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "[pytest11]" in text and "awq_harness.conformance.plugin" in text
    assert "awq-harness = awq_harness.awq_ref.cli:main" in text


# --- slow: the pip-install path in a fresh venv -----------------------------------------------------------------


def _build(out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    done = _run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(_source(out))],
                cwd=out, env=_clean_env())
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (sdist,), (wheel,) = out.glob("awq_harness-*.tar.gz"), out.glob("awq_harness-*.whl")
    return sdist, wheel


def _venv(where: Path, wheel: Path) -> Path:
    assert _run([sys.executable, "-m", "venv", str(where)], cwd=where.parent, env=_clean_env()).returncode == 0
    pip = [str(where / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(ROOT / ".ci" / "constraints.txt")]
    for args in (["torch==2.13.0"], [str(wheel), "kernels", "pytest", "pytest-xdist"]):
        done = _run(pip + args, cwd=where.parent, timeout=1800, env=_clean_env())
        assert done.returncode == 0, done.stderr[-3000:]
    return where / "bin"


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    return {**env, "HF_HUB_OFFLINE": "1"}


def _cases(xml: Path) -> dict[str, bool]:
    return {c.get("name"): c.find("failure") is not None for c in ET.parse(xml).getroot().iter("testcase")}


def _collect_seconds(python: Path, project: Path, *args: str, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        done = _run([str(python), "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args], project,
                    env=_clean_env())
        best = min(best, time.perf_counter() - t)
        assert done.returncode == 0, done.stdout[-2000:]
    return best


@pytest.mark.slow
def test_installed_wheel_beside_hub_kernels(tmp_path):
    sdist, wheel = _build(tmp_path / "dist")
    assert "setup.py" in {Path(n).name for n in tarfile.open(sdist).getnames()}
    bin_ = _venv(tmp_path / "venv", wheel)
    outside = tmp_path / "outside"
    outside.mkdir()
    env, py = _clean_env(), bin_ / "python"
    log = []

    def run(*cmd: str, timeout: int = 900) -> subprocess.CompletedProcess:
        done = _run(list(cmd), outside, timeout, env)
        log.append({"cmd": " ".join(cmd), "rc": done.returncode, "tail": (done.stdout + done.stderr)[-600:]})
        return done

    coexist = run(str(py), "-c", "import importlib.util, sys, tempfile, torch, kernels, awq_harness.kernels.gemm\n"
                  "from transformers import AutoModelForCausalLM\n"
                  "from transformers.utils.import_utils import _is_package_available\n"
                  "from awq_harness.awq_ref.data.tiny import tiny_model\n"
                  "print(kernels.__file__)\nprint(_is_package_available('kernels', return_version=True))\n"
                  "d = tempfile.mkdtemp(); tiny_model('llama').save_pretrained(d)\n"
                  "print(tuple(AutoModelForCausalLM.from_pretrained(d)(torch.arange(5)[None]).logits.shape))")
    assert coexist.returncode == 0, coexist.stderr[-3000:]
    hub_kernels, probed, shape = coexist.stdout.split("\n")[:3]
    assert hub_kernels.startswith(str(tmp_path / "venv")) and "awq_harness" not in hub_kernels
    # transformers' probe finds Hugging Face's distribution (whether its version is one this
    # transformers uses is transformers' business), and transformers runs beside the harness
    assert probed.startswith("(True, '") and shape == "(1, 5, 512)"
    for command in COMMANDS:
        assert run(str(bin_ / "awq-harness"), command, "--help").returncode == 0, command
    assert run(str(bin_ / "awq-harness"), "verify", str(GOLDEN), "--markdown", "card.md").returncode == 0
    assert run(str(bin_ / "awq-harness"), "convert", str(GOLDEN), "fp16", "--to", "fp16").returncode == 0
    bad = outside / "defect"
    shutil.copytree(GOLDEN, bad)
    (bad / "config.json").write_text("[]")
    good = run(str(py), "-m", "pytest", f"--checkpoint={GOLDEN}", "--junitxml=good.xml", "-p", "no:cacheprovider")
    failed = run(str(py), "-m", "pytest", f"--checkpoint={bad}", "--junitxml=bad.xml", "-p", "no:cacheprovider")
    spread = run(str(py), "-m", "pytest", f"--checkpoint={GOLDEN}", "-n", "2", "-p", "no:cacheprovider")
    assert good.returncode == 0 and spread.returncode == 0, good.stdout[-2000:]
    assert failed.returncode == 1 and [n for n, f in _cases(outside / "bad.xml").items() if f] == [
        "test_rule[config.present]"]
    assert not any(_cases(outside / "good.xml").values()) and len(_cases(outside / "good.xml")) > 30

    project = tmp_path / "unrelated"
    project.mkdir()
    (project / "test_many.py").write_text(
        "import sys\nimport pytest\n\n@pytest.mark.parametrize('i', range(200))\ndef test_i(i):\n    assert i >= 0\n\n"
        "def test_no_torch():\n    assert 'torch' not in sys.modules\n")
    assert _run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider"], project, env=env).returncode == 0
    with_plugin = _collect_seconds(py, project)
    without = _collect_seconds(py, project, "-p", "no:awq_harness.conformance.plugin")
    log.append({"collect_s_with_plugin": with_plugin, "collect_s_without_plugin": without})
    artifacts = Path(os.environ.get("AWQ_HARNESS_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "install-transcript.json").write_text(json.dumps(log, indent=1) + "\n")
    print(f"\ncollection of an unrelated project: {with_plugin:.3f} s with the plugin, {without:.3f} s without")
