"""GPTQ --gptq-act-order into compressed-tensors: weight_g_idx beside codes in column order, actorder
"group"; the decoder applies the permuted groups, giving exactly the GPTQ layout's weights and the
in-memory GPTQ model's w_hat."""
import json

import pytest
import torch
from safetensors.torch import load_file

from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.data.models import load_model, load_tokenizer
from awq_harness.awq_ref.data.tiny import save_tiny_model
from awq_harness.awq_ref.methods.gptq import GptqConfig
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.quant import QuantSpec
from awq_harness.conformance import verify
from awq_harness.conformance.dequantized import load_dequantized

CALIB = ["--calib-samples", "2", "--seqlen", "64", "--calib-dtype", "float32"]
NAME = "model.layers.0.mlp.down_proj"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("act-order")
    model = save_tiny_model(root / "tiny", "llama", seed=3)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    for fmt in ("compressed-tensors", "gptq"):
        code = main(["quantize", "--model", str(model), "--method", "gptq", "--gptq-act-order", "--format", fmt,
                     *CALIB, "--out", str(root / fmt)])
        assert code == 0
    torch.set_num_threads(before)
    return root


def test_act_order_is_announced_and_stored(folders):
    q = json.loads((folders / "compressed-tensors" / "config.json").read_text())["quantization_config"]
    assert q["config_groups"]["group_0"]["weights"]["actorder"] == "group"
    tensors = load_file(folders / "compressed-tensors" / "model.safetensors")
    g_idx = tensors[f"{NAME}.weight_g_idx"].long()
    k, groups = g_idx.numel(), tensors[f"{NAME}.weight_scale"].shape[1]
    assert not torch.equal(g_idx, torch.arange(k) // (k // groups))  # the groups really are permuted
    assert torch.equal(torch.bincount(g_idx), torch.full((groups,), k // groups))
    report = verify(folders / "compressed-tensors")
    assert report.exit_code() == 0, [f.line() for f in report.findings if f.severity == "error"]


def test_dequantised_with_g_idx_equals_the_gptq_layout_and_the_in_memory_model(folders):
    ct = load_dequantized(folders / "compressed-tensors").get_submodule(NAME).weight.detach()
    gptq = load_dequantized(folders / "gptq").get_submodule(NAME).weight.detach()
    assert torch.equal(ct, gptq)
    model = load_model(folders / "tiny")
    request = QuantizeRequest(QuantSpec(4, 64), None, calib_samples=2, seqlen=64, gptq=GptqConfig(act_order=True))
    quantize_model(model, "gptq", request, load_tokenizer(folders / "tiny"))
    w_hat = model.get_submodule(NAME).weight.detach().float()
    assert torch.allclose(ct, w_hat, rtol=2e-3, atol=1e-6)  # w_hat in memory: fp32 scales; stored: fp16


def test_reading_the_codes_in_contiguous_groups_would_be_wrong(folders):
    """Negative control: without weight_g_idx the same tensors decode to another weight."""
    from awq_harness.awq_ref.formats import compressed_tensors as ct

    tensors = load_file(folders / "compressed-tensors" / "model.safetensors")
    own = {s: tensors[f"{NAME}.{s}"] for s in ct.TENSOR_NAMES if f"{NAME}.{s}" in tensors}
    contiguous = ct.decode(own, QuantSpec(4, 64)).dequantize()
    right = load_dequantized(folders / "compressed-tensors").get_submodule(NAME).weight.detach()
    assert (contiguous - right).abs().max() > 10 * (right.abs().max() / 2 ** 11)
