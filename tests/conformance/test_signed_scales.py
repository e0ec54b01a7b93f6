"""AutoRound's symmetric export stores negative scales by design (``int_sym``: the group's larger-
magnitude extreme on code 0): legal there, where the zeros are the symmetric 8; still an error in
every other dialect, and a zero scale always is."""
import json

import pytest
import torch

from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.data.tiny import save_tiny_model
from awq_harness.awq_ref.formats import gptq
from awq_harness.awq_ref.primitives.quant import QuantizedWeight, QuantSpec
from awq_harness.conformance import verify
from awq_harness.conformance.dequantized import load_dequantized
from tests.conformance.helpers import edit_config, edit_tensors

AUTO_ROUND_SYM = {"quant_method": "auto-round", "bits": 4, "group_size": 64, "sym": True,
                  "packing_format": "auto_round:auto_gptq"}


@pytest.fixture(scope="module")
def symmetric_gptq(tmp_path_factory):
    root = tmp_path_factory.mktemp("signed")
    model = save_tiny_model(root / "tiny", "llama", seed=2)
    assert main(["quantize", "--model", str(model), "--method", "gptq", "--format", "gptq", "--no-zero-point",
                 "--calib-samples", "2", "--seqlen", "64", "--calib-dtype", "float32", "--out", str(root / "sym")]) == 0
    return root / "sym"


def _flip_groups(tensors):
    """AutoRound's full-range reading of each group without a code 0: s -> -s, q -> 16 - q, the same
    (q - 8) * s; returns how many scales became negative."""
    flipped = 0
    for name in [n for n in tensors if n.endswith(".qweight")]:
        prefix = name[: -len(".qweight")]
        own = {s: tensors[f"{prefix}.{s}"] for s in gptq.TENSOR_NAMES}
        qw = gptq.unpack(own, QuantSpec(4, 64, False))
        g = qw.group_width
        no_zero = (qw.q.reshape(qw.q.shape[0], -1, g) > 0).all(-1)
        q = torch.where(no_zero.repeat_interleave(g, dim=1), 16 - qw.q, qw.q)
        scales = torch.where(no_zero, -qw.scales, qw.scales)
        flipped += int(no_zero.sum())
        tensors.update({f"{prefix}.{s}": t for s, t in
                        gptq.pack(QuantizedWeight(q, scales, qw.zeros, qw.spec)).items() if s != "g_idx"})
    assert flipped
    return flipped


def _copy_as(src, dst, quantization_config):
    import shutil

    shutil.copytree(src, dst)
    edit_config(dst, lambda c: c.__setitem__("quantization_config", quantization_config))
    edit_tensors(dst, _flip_groups)
    return dst


def test_autoround_symmetric_negative_scales_conform(symmetric_gptq, tmp_path):
    folder = _copy_as(symmetric_gptq, tmp_path / "autoround-sym", AUTO_ROUND_SYM)
    report = verify(folder)
    assert not report.of_rule("scales.positive") and report.exit_code() == 0, [f.line() for f in report.findings]
    assert report.format == "gptq"
    name = "model.layers.0.mlp.down_proj"
    flipped = load_dequantized(folder).get_submodule(name).weight
    assert torch.equal(flipped, load_dequantized(symmetric_gptq).get_submodule(name).weight)


@pytest.mark.parametrize("config", [
    {"quant_method": "gptq", "bits": 4, "group_size": 64, "sym": True, "desc_act": False, "checkpoint_format": "gptq"},
    {**AUTO_ROUND_SYM, "sym": False},
], ids=["gptq-sym", "autoround-asym"])
def test_negative_scales_are_still_an_error_elsewhere(symmetric_gptq, tmp_path, config):
    folder = _copy_as(symmetric_gptq, tmp_path / "other", config)
    assert [f.severity for f in verify(folder).of_rule("scales.positive")][:1] == ["error"]


def test_a_zero_scale_is_an_error_even_for_autoround(symmetric_gptq, tmp_path):
    folder = _copy_as(symmetric_gptq, tmp_path / "zero", AUTO_ROUND_SYM)
    edit_tensors(folder, lambda t: t["model.layers.0.mlp.down_proj.scales"].__setitem__((0, 0), 0.0))
    assert json.loads((folder / "config.json").read_text())["quantization_config"]["sym"] is True
    assert [f.severity for f in verify(folder).of_rule("scales.positive")] == ["error"]
