"""convert writes a valid target or nothing: float32 scales are rounded to fp16 for the GEMM
layout (with the largest relative change of a dequantised weight reported), bf16 and fp16
ones are kept, a scale fp16 cannot hold is refused with nothing written, and a result that
would not verify is never left behind."""
import pytest
import torch

from awq_harness.conformance import decode
from awq_harness.conformance.convert import convert_checked
from awq_harness.conformance.runner import load_layers, verify
from tests.conformance.helpers import edit_tensors, run_cli

SCALE = "weight_scale"
DOWN = "model.layers.0.mlp.down_proj"


def _with_scales(ct, dtype, change=None):
    """The compressed-tensors folder with every weight_scale cast to ``dtype`` (after ``change``)."""
    def edit(tensors):
        for name in [n for n in tensors if n.endswith("." + SCALE)]:
            s = tensors[name].to(torch.float32)
            tensors[name] = (change(name, s) if change else s).to(dtype).contiguous()
    edit_tensors(ct, edit)
    return ct


def _off_the_fp16_grid(name, s):
    return s * (1 + 2.0 ** -13)  # between two fp16 neighbours: fp16 has 10 mantissa bits


def _weights(folder):
    _, _, layers, reader, _ = load_layers(folder)
    return {lay.prefix: decode.full(lay, {s: reader.get(i) for s, i in lay.infos.items()}, False) for lay in layers}


def _leaves_nothing(tmp_path, dst):
    return not dst.exists() and not list(tmp_path.glob(f".{dst.name}.*"))


def test_float32_scales_are_rounded_to_fp16_and_the_change_is_reported(fresh, tmp_path):
    src = _with_scales(fresh("ct"), torch.float32, _off_the_fp16_grid)
    assert verify(src).conforms
    result = convert_checked(src, tmp_path / "gemm", "gemm")
    assert result.report.conforms and verify(result.path).conforms
    before, after = _weights(src), _weights(result.path)
    worst = 0.0
    for prefix, qw in before.items():
        got = after[prefix]
        assert got.scales.dtype == torch.float16
        assert torch.equal(got.q, qw.q) and torch.equal(got.zeros, qw.zeros)
        w, w2 = qw.dequantize(torch.float64), got.dequantize(torch.float64)
        nz = w != 0
        worst = max(worst, float(((w2 - w).abs()[nz] / w.abs()[nz]).max()))
    assert result.rounding.max_relative_change == pytest.approx(worst, rel=1e-12)
    assert 0 < worst <= 2.0 ** -11  # half an fp16 ulp, relative, for normal scales
    assert result.rounding.layers == len(before) and result.rounding.source_dtype == "F32"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_bf16_and_fp16_scales_are_kept_bit_for_bit(fresh, tmp_path, dtype):
    src = _with_scales(fresh("ct"), dtype)
    result = convert_checked(src, tmp_path / "gemm", "gemm")
    assert result.rounding.layers == 0 and result.rounding.max_relative_change == 0
    before, after = _weights(src), _weights(result.path)
    for prefix, qw in before.items():
        assert after[prefix].scales.dtype == dtype and torch.equal(after[prefix].dequantize(), qw.dequantize())


@pytest.mark.parametrize("value, why", [(7.0e4, "65504"), (1.0e-9, "does not fit F16")],
                         ids=["overflows", "underflows"])
def test_a_scale_fp16_cannot_hold_is_refused_with_nothing_written(fresh, tmp_path, capsys, value, why):
    """Beyond fp16's range the source itself fails the verifier (fp16 kernels would overflow);
    a non-zero scale that fp16 rounds to zero is refused by the conversion."""
    def one_bad(name, s):
        if name.startswith(DOWN):
            s = s.clone()
            s[0, 0] = value
        return s
    src = _with_scales(fresh("ct"), torch.float32, one_bad)
    dst = tmp_path / "gemm"
    assert run_cli(["convert", str(src), str(dst), "--to", "gemm"]) == 2
    out = capsys.readouterr().out
    assert DOWN in out and why in out and len(out.strip().splitlines()) == 1
    assert _leaves_nothing(tmp_path, dst)


def test_cli_reports_the_rounding(fresh, tmp_path, capsys):
    src = _with_scales(fresh("ct"), torch.float32, _off_the_fp16_grid)
    assert run_cli(["convert", str(src), str(tmp_path / "gemm"), "--to", "gemm"]) == 0
    out = capsys.readouterr().out
    assert "verifies" in out and "rounded F32 -> F16" in out and "largest relative change" in out


def test_a_result_that_would_not_verify_is_not_left_behind(fresh, tmp_path, monkeypatch):
    import awq_harness.conformance.convert as conv

    # The old behaviour: float32 scales copied into the GEMM layout, which no GEMM reader accepts.
    monkeypatch.setattr(conv, "target_scale_dtype", lambda source, layout: source)
    src = _with_scales(fresh("ct"), torch.float32)
    dst = tmp_path / "gemm"
    assert run_cli(["convert", str(src), str(dst), "--to", "gemm"]) == 2
    assert _leaves_nothing(tmp_path, dst)


def test_float32_scales_stay_float32_in_compressed_tensors(fresh, tmp_path):
    """compressed-tensors holds float32 scales, so GEMM -> CT -> GEMM of an fp16 source never rounds."""
    back = convert_checked(convert_checked(fresh("gemm"), tmp_path / "ct", "compressed-tensors").path,
                           tmp_path / "back", "gemm")
    assert back.rounding.layers == 0 and back.report.conforms
