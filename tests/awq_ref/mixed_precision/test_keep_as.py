"""Plans that keep modules at 8 bits (a second compressed-tensors scheme) instead of float:
the kept linears are 8-bit RTN copies, their bytes are the 8-bit layout's tensors, and the plan
recovers nearly what the float plan does for fewer bytes."""
import copy
import json

import pytest
import torch

from awq_harness.awq_ref.data.tiny import tiny_model
from awq_harness.awq_ref.errors import HarnessError
from awq_harness.awq_ref.formats import compressed_tensors
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.mixed_precision.keep_as import eight_bit_spec, kept_module, linear_bytes
from awq_harness.awq_ref.mixed_precision.plan import plan_keep_layers
from awq_harness.awq_ref.mixed_precision.sensitivity import layer_sensitivity
from awq_harness.awq_ref.model.arch import decoder_layers
from awq_harness.awq_ref.pipeline.keep import parse_keep
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.quant import QuantSpec, quantize

FOUR = QuantSpec(4, 32)


@pytest.mark.parametrize("four", [QuantSpec(4, 32), QuantSpec(4, 64, False), QuantSpec(4, -1)],
                         ids=["g32", "g64-sym", "per-channel"])
def test_eight_bit_bytes_are_those_of_the_packed_tensors(four):
    spec = eight_bit_spec(four)
    qw = quantize(torch.randn(48, 128), spec, torch.float16)
    packed = compressed_tensors.pack(qw)
    assert linear_bytes(128, 48, "8bit", four) == sum(t.numel() * t.element_size() for t in packed.values())
    assert linear_bytes(128, 48, "float", four) == 2 * 128 * 48


def test_an_eight_bit_copy_is_within_one_step_and_leaves_the_original():
    layer = decoder_layers(tiny_model("llama", layers=1))[0]
    before = {n: m.weight.clone() for n, m in layer.named_modules() if type(m) is torch.nn.Linear}
    kept = kept_module(layer, "8bit", FOUR)
    assert kept_module(layer, "float", FOUR) is layer
    for name, w in before.items():
        assert torch.equal(layer.get_submodule(name).weight, w)
        qw = quantize(w.float(), eight_bit_spec(FOUR), torch.float16)
        step = qw.scales.float().repeat_interleave(32, dim=1)
        got = kept.get_submodule(name).weight
        assert not torch.equal(got, w) and bool(((got - w).abs() <= step + 1e-6).all())


def _confident(seed=3):
    model = tiny_model("llama", seed=seed, layers=3)
    model.get_output_embeddings().weight.data *= 20
    start = torch.randint(0, 512, (4, 1), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    ids = model.generate(start, do_sample=True, max_new_tokens=63, min_new_tokens=63, top_k=0, pad_token_id=0)
    return model, ids


def test_an_eight_bit_plan_recovers_nearly_the_float_plans_share_for_fewer_bytes():
    reference, ids = _confident()
    quantized = copy.deepcopy(reference)
    quantize_model(quantized, "rtn", QuantizeRequest(QuantSpec(4, 32), "gemm"))
    ranking = layer_sensitivity(reference, quantized, ids[:2])
    plans = {k: plan_keep_layers(reference, quantized, ranking, ids[:2], 1.0, validation_ids=ids[2:], keep_as=k)
             for k in ("float", "8bit")}
    f, e = plans["float"], plans["8bit"]
    assert f.keep_layers == [0, 1, 2] and f.recovered == pytest.approx(1.0)  # every layer float: the float model
    assert abs(e.recovered - 1.0) < 0.05 and abs(e.validation.recovered - 1.0) < 0.05
    assert 0 < e.extra_bytes < f.extra_bytes
    assert e.modules_to_not_convert("model.layers") == [] and e.kept_modules("model.layers")
    assert e.to_json()["keep_as"] == "8bit"


def test_quantize_refuses_an_eight_bit_plan_it_cannot_write(tmp_path):
    model = tiny_model("llama", layers=2)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"plan": {"keep_layers": [1], "keep_linears": [], "keep_as": "8bit"}}))
    with pytest.raises(HarnessError, match="8bit"):
        parse_keep(str(plan), model)
    plan.write_text(json.dumps({"plan": {"keep_layers": [1], "keep_linears": [], "keep_as": "float"}}))
    assert parse_keep(str(plan), model).layers == [1]
