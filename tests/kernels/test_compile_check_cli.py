"""``awq-harness kernels compile-check``: exit 0 when every case passes and the control is
rejected, 1 otherwise, 2 (one line) for an unknown architecture; --json writes every case."""
import json

from awq_harness.awq_ref.cli import main
from awq_harness.kernels import compile_check, configs


def _one_case():
    layer = configs.LayerShape(4096, 4096, 128)
    case = compile_check._layer_cases("sm_80", "float16", layer)[0]  # the dequantise kernel
    return {case.key(): [(case, 128, "llama-2-7b.attn.q_proj")]}


def test_compile_check_command_writes_json_and_passes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(compile_check, "subset_cases", _one_case)
    out = tmp_path / "cc.json"
    assert main(["kernels", "compile-check", "--subset", "--json", str(out)]) == 0
    written = json.loads(out.read_text())
    results = written["results"]
    assert [r["kernel"] for r in results] == ["dequantize", "gemm"] and written["seconds"] > 0
    assert results[0]["ok"] and results[0]["registers"] > 0 and results[0]["spill_bytes"] == 0
    assert results[1]["control"] and not results[1]["ok"], "the negative control is reported, not passed"
    assert "control rejected" in capsys.readouterr().out


def test_compile_check_command_fails_on_a_failing_case(monkeypatch, capsys):
    config = {"block_m": 1, "block_n": 64, "block_k": 32, "split_k": 1, "num_warps": 4, "num_stages": 3}
    failing = compile_check.Result("sm_80", "dequantize", "float16", config, errors=["made to fail"])
    control = compile_check.Result("sm_86", "gemm", "float16", config, errors=["over"], control=True)
    monkeypatch.setattr(compile_check, "subset_cases", _one_case)
    monkeypatch.setattr(compile_check, "run", lambda found: [failing, control])
    assert main(["kernels", "compile-check", "--subset"]) == 1
    assert "FAIL sm_80 dequantize float16 1x64x32 split 1 w4 s3: made to fail" in capsys.readouterr().out


def test_compile_check_command_rejects_an_unknown_arch(capsys):
    assert main(["kernels", "compile-check", "--arch", "sm_80,sm_99"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sm_99" in err
