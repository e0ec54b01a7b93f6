"""Format detection and reading for every layout, and checkpoints shaped like the peers'
real output (AutoAWQ, GPTQModel and llm-compressor checkpoints, as they write them) conform."""
from __future__ import annotations

import shutil

import pytest
import torch

from awq_harness.awq_ref.formats import awq_gemv, compressed_tensors, gptq
from awq_harness.awq_ref.primitives.quant import QuantSpec, quantize
from awq_harness.conformance import verify
from tests.conformance.helpers import edit_config, edit_tensors, gptq_config, relayout, unpack_ct_zero_points


def _errors(report):
    return [f.line() for f in report.findings if f.severity == "error"]


# ---------------------------------------------------------------- packing modules

@pytest.mark.parametrize("module", [compressed_tensors, gptq])
@pytest.mark.parametrize("group", [32, 64, -1])
def test_pack_unpack_round_trip_and_shape_table(module, group):
    w = torch.randn(48, 128, generator=torch.Generator().manual_seed(group + 100))
    qw = quantize(w, QuantSpec(4, group), torch.float16)
    kwargs = {"checkpoint_format": "gptq_v2"} if module is gptq else {}
    packed = module.pack(qw, **kwargs)
    want = module.shapes(128, 48, qw.group_width)
    assert {k: tuple(v.shape) for k, v in packed.items()} == {k: tuple(v) for k, v in want.items()}
    back = module.unpack(packed, qw.spec, **kwargs)
    assert torch.equal(back.q, qw.q) and torch.equal(back.zeros, qw.zeros) and torch.equal(back.scales,
                                                                                           qw.scales.half())
    assert torch.equal(back.dequantize(), qw.dequantize())


def test_compressed_tensors_layout_details():
    qw = quantize(torch.randn(16, 64), QuantSpec(4, 32), torch.float16)
    t = compressed_tensors.pack(qw, torch.bfloat16)
    assert t["weight_shape"].dtype == torch.int64 and t["weight_shape"].tolist() == [16, 64]
    assert t["weight_zero_point"].shape == (2, 2) and t["weight_scale"].dtype == torch.bfloat16
    first_word = int(t["weight_packed"][0, 0]) & 0xFFFFFFFF
    assert [(first_word >> (4 * i)) & 0xF for i in range(8)] == qw.q[0, :8].tolist()  # natural order along K
    sym = compressed_tensors.pack(quantize(torch.randn(16, 64), QuantSpec(4, 32, zero_point=False)))
    assert "weight_zero_point" not in sym


def test_compressed_tensors_pads_k_not_divisible_by_8():
    qw = quantize(torch.randn(8, 36), QuantSpec(4, 12), torch.float16)
    t = compressed_tensors.pack(qw)
    assert t["weight_packed"].shape == (8, 5)
    assert torch.equal(compressed_tensors.unpack(t, qw.spec).q, qw.q)


def test_gptq_v1_stores_zero_minus_one_and_refuses_zero():
    qw = quantize(torch.randn(8, 64), QuantSpec(4, 64, zero_point=False), torch.float16)  # z = 8 everywhere
    assert (int(gptq.pack(qw)["qzeros"][0, 0]) & 0xFFFFFFFF) == 0x77777777
    qw.zeros[0, 0] = 0
    with pytest.raises(ValueError, match="gptq_v2"):
        gptq.pack(qw)


# ---------------------------------------------------------------- whole checkpoints

def test_gptq_v1_checkpoint_conforms(built, tmp_path):
    folder = relayout(built["gemm"], tmp_path / "v1", gptq, gptq_config(64, v2=False))
    report = verify(folder)
    assert report.format == "gptq" and not _errors(report)


def test_gemv_checkpoint_reads_and_warns_about_vllm(built, tmp_path):
    cfg = {"quant_method": "awq", "bits": 4, "group_size": 64, "zero_point": True, "version": "gemv",
           "modules_to_not_convert": None}
    report = verify(relayout(built["gemm"], tmp_path / "gemv", awq_gemv, cfg))
    assert report.format == "gemv" and not _errors(report)
    assert any("GEMV" in f.message for f in report.of_rule("loader.vllm"))


def test_format_detected_without_config(built, tmp_path):
    folder = tmp_path / "noconf"
    shutil.copytree(built["ct"], folder)
    (folder / "config.json").unlink()
    assert verify(folder).format == "compressed-tensors"


def test_gptqmodel_awq_shape_conforms(built, tmp_path):
    """GPT-QModel AWQ: GEMM tensors with bf16 scales and many extra config keys."""
    folder = tmp_path / "gptqmodel"
    shutil.copytree(built["gemm"], folder)
    edit_tensors(folder, lambda t: t.update({k: v.to(torch.bfloat16) for k, v in t.items() if k.endswith(".scales")}))
    edit_config(folder, lambda c: c.__setitem__("quantization_config", {
        "bits": 4, "group_size": 64, "quant_method": "awq", "format": "gemm", "checkpoint_format": "gemm",
        "version": "gemm", "zero_point": True, "sym": False, "desc_act": False, "pack_dtype": "int32",
        "lm_head": False, "true_sequential": True,
        "meta": {"quantizer": ["gptqmodel:7.6.0"], "offload_to_disk_path": "/tmp/x"}}))
    assert not _errors(verify(folder))


def test_llm_compressor_shape_conforms(built, tmp_path):
    """llm-compressor W4A16_ASYM: bf16 weight_scale, int64 weight_shape, packed int32 zero points."""
    folder = tmp_path / "llmc"
    shutil.copytree(built["ct"], folder)
    edit_tensors(folder,
                 lambda t: t.update({k: v.to(torch.bfloat16) for k, v in t.items() if k.endswith(".weight_scale")}))

    def older_config(c):
        q = c["quantization_config"]
        del q["config_groups"]["group_0"]["format"]  # older releases: top-level format only
        q["config_groups"]["group_0"]["weights"].update(observer="memoryless_minmax", zp_dtype="torch.int8")
        q["global_compression_ratio"] = None
    edit_config(folder, older_config)
    report = verify(folder)
    assert report.format == "compressed-tensors" and not _errors(report)


def test_old_unpacked_int8_zero_point_is_read_with_a_warning(built, tmp_path):
    folder = tmp_path / "ct-old"
    shutil.copytree(built["ct"], folder)
    edit_tensors(folder, unpack_ct_zero_points)
    report = verify(folder)
    assert not _errors(report)
    assert any("unpacked int8" in f.message for f in report.of_rule("tensors.shape"))
    assert not report.of_rule("numeric.zero-offset")
