"""The methods on MoE layers: statistics from routed tokens, experts no token reached, float routers."""
from __future__ import annotations

import copy

import torch

from awq_harness.awq_ref.data.tiny import tiny_model
from awq_harness.awq_ref.methods.awq import AwqSearchConfig
from awq_harness.awq_ref.methods.gptq import GptqConfig, GptqStep, gptq_weight
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.model.arch import decoder_layers
from awq_harness.awq_ref.pipeline.quantize import run_step
from awq_harness.awq_ref.primitives.quant import QuantSpec, quantize
from tests.awq_ref.methods.awq.run import run_awq

SPEC = QuantSpec(4, 64)
CALIB = torch.randint(0, 512, (4, 32), generator=torch.Generator().manual_seed(21))
DEAD = 3
DOWN = f"mlp.experts.{DEAD}.down_proj"


def never_routed_to(model, expert: int):
    """Every router's choice of ``expert`` moved to another expert: ``expert`` sees no token."""
    for layer in decoder_layers(model):
        router = layer.mlp.gate
        forward = router.forward

        def rerouted(hidden, forward=forward):
            logits, scores, chosen = forward(hidden)
            return logits, scores, torch.where(chosen == expert, (chosen + 1) % expert, chosen)

        router.forward = rerouted
    return model


def test_awq_gives_an_unrouted_expert_unit_scales_and_no_clip():
    model = never_routed_to(tiny_model("qwen3_moe", seed=4, layers=1), DEAD)
    before = decoder_layers(model)[0].get_submodule(DOWN).weight.detach().clone()
    result = run_awq(model, CALIB, SPEC, AwqSearchConfig(n_grid=4), keep_tensors=True)
    prevs = {g.prev for g in result.groups}
    assert f"mlp.experts.{DEAD}.up_proj" not in prevs and "mlp.experts.0.up_proj" in prevs
    assert not [k for k in result.clips if f"experts.{DEAD}." in k] and [k for k in result.clips if "experts.0." in k]
    after = decoder_layers(model)[0].get_submodule(DOWN).weight
    assert torch.equal(after, quantize(before, SPEC, scale_dtype=torch.float16).dequantize(torch.float32))


def test_gptq_quantises_an_unrouted_expert_with_the_identity_hessian():
    """Not a zero Hessian, which would mark every input dead and zero the expert."""
    model = never_routed_to(tiny_model("qwen3_moe", seed=4, layers=1), DEAD)
    layer = decoder_layers(model)[0]
    originals = {n: layer.get_submodule(f"mlp.experts.{DEAD}.{n}").weight.detach().clone()
                 for n in ("gate_proj", "up_proj", "down_proj")}
    run_step(model, GptqStep(QuantizeRequest(SPEC, None), CALIB))
    for name, w in originals.items():
        rounded = gptq_weight(w, torch.eye(w.shape[1]), SPEC, GptqConfig(damp=0.0)).dequantize()
        assert torch.equal(layer.get_submodule(f"mlp.experts.{DEAD}.{name}").weight, rounded), name
        assert rounded.abs().sum() > 0


def test_awq_statistics_of_an_expert_come_from_its_routed_tokens():
    """An expert's up -> down scales follow the tokens routed to it: with expert 3's tokens sent to the
    others, expert 3 has no group and the experts that took its tokens get other scales."""
    def down_scales(model):
        result = run_awq(model, CALIB, SPEC, AwqSearchConfig(n_grid=4), mode="scale_only", keep_tensors=True)
        return {g.prev: g.scales for g in result.groups if g.prev.endswith("up_proj")}

    plain = tiny_model("qwen3_moe", seed=4, layers=1)
    rerouted = never_routed_to(copy.deepcopy(plain), DEAD)
    a, b = down_scales(plain), down_scales(rerouted)
    assert f"mlp.experts.{DEAD}.up_proj" in a and f"mlp.experts.{DEAD}.up_proj" not in b
    moved = [k for k in b if not torch.equal(a[k], b[k])]
    assert moved  # the experts that took expert 3's tokens see other statistics
