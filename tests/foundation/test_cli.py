"""The awq-harness console script: the quantize -> load -> eval job, and one-line errors."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from awq_ref.checkpoint import load_checkpoint
from awq_ref.cli import main
from awq_ref.tiny import tiny_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny") / "llama"
    tiny_model("llama").save_pretrained(folder)
    return folder


@pytest.mark.parametrize("extra", [[], ["--format", "gemv", "--no-zero-point", "--group-size", "32"]])
def test_quantize_writes_a_loadable_checkpoint(tiny_dir, tmp_path, capsys, extra):
    out = tmp_path / "ck"
    code = main(["quantize", "--model", str(tiny_dir), "--method", "rtn", "--w-bit", "4", "--group-size", "64",
                 "--out", str(out), *extra])
    assert code == 0
    printed = capsys.readouterr().out
    assert "quantised 14 linears" in printed and "weight error" in printed and "size:" in printed
    assert load_checkpoint(out) is not None
    meta = json.loads((out / "awq_harness.json").read_text())
    assert meta["method"] == "rtn" and len(meta["linear_errors"]) == 14


@pytest.mark.parametrize("args, message", [
    (["--w-bit", "3"], "4-bit"),
    (["--group-size", "96"], "not divisible"),
    (["--w-bit", "9"], "bits must be in 2..8"),
])
def test_bad_settings_are_one_line_errors(tiny_dir, tmp_path, capsys, args, message):
    code = main(["quantize", "--model", str(tiny_dir), "--out", str(tmp_path / "ck"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ck").exists()


def test_missing_model_and_existing_output_are_one_line_errors(tiny_dir, tmp_path, capsys):
    assert main(["quantize", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "no config.json" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    assert main(["quantize", "--model", str(tiny_dir), "--out", str(tmp_path / "taken")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_default_model_job_end_to_end(tmp_path):
    """The README's main job, as a user runs it: quantise the default model, then evaluate."""
    out = tmp_path / "default-rtn"
    exe = [shutil.which("awq-harness", path=str(Path(sys.executable).parent)) or "awq-harness"]
    q = subprocess.run([*exe, "quantize", "--model", "default", "--out", str(out)], capture_output=True, text=True)
    assert q.returncode == 0, q.stderr[-2000:]
    assert "quantised 210 linears" in q.stdout
    e = subprocess.run([*exe, "--results-json", str(tmp_path / "results.json"), "eval", "--model", "default",
                        "--checkpoint", str(out), "--windows", "2", "--json", str(tmp_path / "eval.json")],
                       capture_output=True, text=True)
    assert e.returncode == 0, e.stderr[-2000:]
    r = subprocess.run([*exe, "report", str(tmp_path / "results.json"), "--out", str(tmp_path / "report.html")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "checkpoint" in (tmp_path / "report.html").read_text()
    table = json.loads((tmp_path / "eval.json").read_text())
    rows, dtype = table["rows"], table["settings"]["dtype"]
    assert dtype["requested"] == "auto" and f"evaluated in {dtype['dtype']} (auto: CPU " in e.stdout
    recorded = json.loads((tmp_path / "results.json").read_text())["sections"]["perplexity"]
    assert {r["dtype"] for r in recorded} == {dtype["dtype"]}
    assert [r["method"] for r in rows] == ["fp", "checkpoint"]
    assert rows[1]["ppl"] > rows[0]["ppl"]
    assert "Traceback" not in q.stderr + e.stderr
