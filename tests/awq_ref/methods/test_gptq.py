"""GPTQ: lower layer-output error than RTN, consistent groups, deterministic, standard layout."""
import json

import pytest
import torch
from safetensors.torch import load_file

from awq_harness.awq_ref.checkpoint.gptq import save_gptq_checkpoint
from awq_harness.awq_ref.data.tiny import tiny_model
from awq_harness.awq_ref.formats import gptq as gptq_layout
from awq_harness.awq_ref.methods.gptq import GptqConfig, GptqStep, gptq_weight, quantization_config, stored_weights
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.pipeline.quantize import run_step
from awq_harness.awq_ref.primitives.quant import QuantSpec

SPEC = QuantSpec(4, 32)


def correlated_inputs(seed=0, t=1024, k=128):
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(k, k, generator=gen) / k**0.5 + torch.eye(k)
    return (torch.randn(t, k, generator=gen) @ mix) * torch.exp(torch.randn(k, generator=gen))


def output_error(x, w, w_hat):
    return float(((x @ (w_hat - w).t()) ** 2).mean())


def rtn_gptq_style(w, spec):
    """GPTQ with an identity Hessian is plain rounding with GPTQ's quantiser."""
    return gptq_weight(w, torch.eye(w.shape[1]), spec, GptqConfig(damp=0.0)).dequantize()


CONFIGS = [GptqConfig(), GptqConfig(act_order=True), GptqConfig(act_order=True, static_groups=True),
           GptqConfig(block_size=32)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["plain", "act_order", "static", "block32"])
def test_gptq_beats_rounding_on_the_layer_output(cfg):
    x = correlated_inputs()
    w = torch.randn(64, 128, generator=torch.Generator().manual_seed(1))
    h = 2 * x.t() @ x / x.shape[0]
    qw = gptq_weight(w, h, SPEC, cfg)
    assert output_error(x, w, qw.dequantize()) < 0.8 * output_error(x, w, rtn_gptq_style(w, SPEC))


def test_codes_scales_and_groups_are_consistent():
    x = correlated_inputs(seed=2)
    w = torch.randn(32, 128, generator=torch.Generator().manual_seed(3))
    h = 2 * x.t() @ x / x.shape[0]
    plain = gptq_weight(w, h, SPEC, GptqConfig())
    assert plain.contiguous_groups() and plain.q.min() >= 0 and plain.q.max() <= 15
    assert plain.scales.dtype == torch.float16 and plain.scales.shape == (32, 4)
    ordered = gptq_weight(w, h, SPEC, GptqConfig(act_order=True))
    assert not ordered.contiguous_groups()
    assert torch.equal(torch.bincount(ordered.g_idx.long()), torch.full((4,), 32))
    with pytest.raises(ValueError, match="g_idx"):
        ordered.as_quantized_weight()


def test_dead_inputs_get_zero_weight_and_no_nan():
    w = torch.randn(16, 64)
    h = torch.eye(64)
    h[3, 3] = 0.0
    qw = gptq_weight(w, h, SPEC)
    assert torch.isfinite(qw.dequantize()).all() and torch.all(qw.dequantize()[:, 3] == 0)


def test_same_seed_same_bytes_and_standard_layout(tmp_path):
    ids = torch.randint(0, 512, (2, 64), generator=torch.Generator().manual_seed(0))
    runs = []
    for _ in range(2):
        model = tiny_model("llama", seed=5)
        step = GptqStep(QuantizeRequest(QuantSpec(4, 64), "gptq"), ids)
        run_step(model, step)
        runs.append(step.result)
    first, second = runs
    assert first.weights.keys() == second.weights.keys()
    for name in first.weights:
        assert torch.equal(first.weights[name].q, second.weights[name].q)
        assert torch.equal(first.weights[name].scales, second.weights[name].scales)
    config = quantization_config(QuantSpec(4, 64), GptqConfig(), checkpoint_format="gptq_v2")
    out = save_gptq_checkpoint(model, stored_weights(second.weights), tmp_path / "ckpt", config)
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["quant_method"] == "gptq" and config["bits"] == 4 and config["group_size"] == 64
    tensors = load_file(out / "model.safetensors")
    name = "model.layers.0.mlp.down_proj"
    assert f"{name}.weight" not in tensors and tensors[f"{name}.qweight"].shape == (256 // 8, 128)
    unpacked = gptq_layout.unpack({k.split(".")[-1]: v for k, v in tensors.items() if k.startswith(name + ".")},
                                  QuantSpec(4, 64), checkpoint_format="gptq_v2")
    assert torch.equal(unpacked.dequantize(), second.weights[name].dequantize())
