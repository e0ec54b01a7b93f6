"""The awq-harness console script: the quantize -> load -> eval job, and one-line errors."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from awq_harness.awq_ref.checkpoint.awq import load_checkpoint
from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.data.tiny import tiny_model
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.modules.qlinear import AwqLinear
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.quant import QuantSpec


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny") / "llama"
    tiny_model("llama").save_pretrained(folder)
    return folder


def _assert_is_the_rtn_model(loaded, spec: QuantSpec, version: str) -> None:
    """``loaded`` is the tiny model fake-quantised with RTN at ``spec``: every decoder linear an
    AwqLinear of that spec and layout whose dequantised weight is exactly the fake-quantised one,
    and the same logits (up to the fp16 scales' arithmetic; the float model is far further off)."""
    expected = tiny_model("llama")
    quantize_model(expected, "rtn", QuantizeRequest(spec, None))
    quantised = {n: m for n, m in loaded.named_modules() if isinstance(m, AwqLinear)}
    assert len(quantised) == 14
    for name, module in quantised.items():
        assert (module.spec, module.version) == (spec, version), name
        assert torch.equal(module.dequantized_weight().float(), expected.get_submodule(name).weight), name
    ids = torch.randint(0, 512, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, want, unquantised = loaded(ids).logits, expected(ids).logits, tiny_model("llama")(ids).logits
    assert (got - want).abs().max() < 1e-2 < (got - unquantised).abs().max()


@pytest.mark.parametrize("extra, spec, version", [
    ([], QuantSpec(4, 64), "gemm"),
    (["--format", "gemv", "--no-zero-point", "--group-size", "32"], QuantSpec(4, 32, zero_point=False), "gemv"),
])
def test_quantize_writes_a_loadable_checkpoint(tiny_dir, tmp_path, capsys, extra, spec, version):
    out = tmp_path / "ck"
    code = main(["quantize", "--model", str(tiny_dir), "--method", "rtn", "--w-bit", "4", "--group-size", "64",
                 "--out", str(out), *extra])
    assert code == 0
    printed = capsys.readouterr().out
    assert "quantised 14 linears" in printed and "weight error" in printed and "size:" in printed
    _assert_is_the_rtn_model(load_checkpoint(out), spec, version)
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


@pytest.mark.parametrize("fmt, tensor", [("gemm", "mlp.gate_proj: --format gemm cannot pack qweight: out_features 36"),
                                         ("gemv", "mlp.down_proj: --format gemv cannot pack qweight: in_features 36")])
def test_the_format_says_which_dimensions_it_cannot_pack(tmp_path, capsys, fmt, tensor):
    """An MLP of width 36 (not a multiple of 8): GEMM packs along out_features and refuses gate_proj,
    GEMV packs along in_features and refuses down_proj; each before any work, in one line."""
    folder = tmp_path / "odd"
    tiny_model("llama", intermediate=36).save_pretrained(folder)
    capsys.readouterr()
    code = main(["quantize", "--model", str(folder), "--format", fmt, "--group-size", "4",
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and f"layer 0 {tensor}" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
