"""Linear-group sensitivity, group-level plans, and selection/validation windows (tiny models)."""
import copy

import pytest
import torch

from awq_harness.awq_ref.data.tiny import tiny_model
from awq_harness.awq_ref.eval.holdout import selection_and_validation
from awq_harness.awq_ref.methods.registry import QuantizeRequest
from awq_harness.awq_ref.mixed_precision.group_sensitivity import group_sensitivity, linear_groups
from awq_harness.awq_ref.mixed_precision.plan import extra_bytes, measure, plan_keep_groups
from awq_harness.awq_ref.model.arch import decoder_layers
from awq_harness.awq_ref.pipeline.quantize import quantize_model
from awq_harness.awq_ref.primitives.quant import QuantSpec, pseudo_quantize


def _confident(family: str, seed: int):
    """A tiny model sharpened so that text sampled from it has structure, and 4 sampled windows:
    in expectation no other model has lower NLL on them, so damage raises perplexity."""
    model = tiny_model(family, seed=seed, layers=3)
    model.get_output_embeddings().weight.data *= 20
    torch.manual_seed(0)
    start = torch.randint(0, 512, (4, 1), generator=torch.Generator().manual_seed(1))
    ids = model.generate(start, do_sample=True, max_new_tokens=63, min_new_tokens=63, top_k=0, pad_token_id=0)
    return model, ids


def test_groups_partition_the_layer_linears():
    model = tiny_model("llama", layers=2)
    groups = linear_groups(model, decoder_layers(model)[0])
    assert groups[0] == ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
    assert ("mlp.gate_proj", "mlp.up_proj") in groups and ("mlp.down_proj",) in groups
    names = [n for g in groups for n in g]
    assert sorted(names) == sorted(n for n, m in decoder_layers(model)[0].named_modules() if type(m) is torch.nn.Linear)


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_the_damaged_group_ranks_first_and_the_plan_keeps_only_it(family):
    reference, ids = _confident(family, seed=3)
    damaged = copy.deepcopy(reference)
    groups = linear_groups(reference, decoder_layers(reference)[1])
    victim = groups[-1]
    for name in victim:
        linear = decoder_layers(damaged)[1].get_submodule(name)
        linear.weight.data = pseudo_quantize(linear.weight.data, QuantSpec(2, -1))
    folded = {i: decoder_layers(reference)[i] for i in range(3)}  # no AWQ fold: the float layers
    ranking = group_sensitivity(reference, folded, damaged, ids)
    assert len(ranking) == 3 * len(groups) and ranking[0].layer == 1 and ranking[0].linears[0].endswith(victim[0])
    assert all(abs(s.delta_nll) < 1e-9 for s in ranking[1:])  # every other group is float in both models
    plan = plan_keep_groups(reference, folded, damaged, ranking, ids[:2], target=1.0, validation_ids=ids[2:])
    assert plan.keep_layers == [] and plan.keep_linears == sorted(ranking[0].linears)
    assert plan.recovered == 1.0 and plan.validation.recovered == 1.0


def test_group_plans_of_an_rtn_checkpoint_keep_float_linears_for_fewer_bytes_than_a_layer():
    reference, ids = _confident("llama", seed=4)
    quantized = copy.deepcopy(reference)
    quantize_model(quantized, "rtn", QuantizeRequest(QuantSpec(4, 32), "gemm"))
    layers = decoder_layers(reference)
    folded = {i: layers[i] for i in range(3)}  # RTN folds nothing
    groups = group_sensitivity(reference, folded, quantized, ids)
    every_linear = {n: layers[s.layer].get_submodule(n.split(".", 3)[3]) for s in groups for n in s.linears}
    assert measure(reference, quantized, every_linear, ids).ppl_plan == pytest.approx(
        measure(reference, quantized, {}, ids).ppl_reference, rel=1e-9)
    first = plan_keep_groups(reference, folded, quantized, groups, ids[:2], target=1e-9, validation_ids=ids[2:])
    kept_layer = int(first.keep_linears[0].split(".")[2])
    assert 0 < len(first.keep_linears) <= 3 and first.recovered > 0 and first.validation.windows == 2
    assert 0 < first.extra_bytes < extra_bytes(decoder_layers(quantized)[kept_layer])


def test_selection_and_validation_windows_are_disjoint_and_consecutive():
    tokens = torch.arange(1000)
    selection, validation = selection_and_validation(tokens, 64, 3, 100, 5)
    assert selection.ids.shape == (3, 64) and validation.ids.shape == (5, 100)
    assert validation.first_token == 192 and validation.ids[0, 0] == 192
    assert not set(selection.ids.flatten().tolist()) & set(validation.ids.flatten().tolist())
    assert validation.describe()["last_token"] == 692
    with pytest.raises(ValueError):
        selection_and_validation(tokens, 64, 3, 100, 9)


def test_moe_layers_are_grouped_by_expert():
    """Qwen2-MoE: q/k/v, one group per routed expert (gate, up, down), the shared expert, then o_proj
    (no v -> o group under grouped-query attention); the router and the shared-expert gate stay float
    and are in no group."""
    model = tiny_model("qwen2_moe", layers=2)
    layer = decoder_layers(model)[0]
    groups = linear_groups(model, layer)
    experts = [tuple(f"mlp.experts.{e}.{p}" for p in ("gate_proj", "up_proj", "down_proj")) for e in range(4)]
    shared = tuple(f"mlp.shared_expert.{p}" for p in ("gate_proj", "up_proj", "down_proj"))
    assert groups == [("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), *experts, shared,
                      ("self_attn.o_proj",)]
    names = [n for g in groups for n in g]
    linears = [n for n, m in layer.named_modules() if type(m) is torch.nn.Linear and not n.endswith("_gate")]
    assert sorted(names) == sorted(linears) and len(names) == len(set(names))


def test_a_damaged_expert_ranks_first():
    reference, ids = _confident("qwen3_moe", seed=3)
    damaged = copy.deepcopy(reference)
    victim = ("mlp.experts.2.gate_proj", "mlp.experts.2.up_proj", "mlp.experts.2.down_proj")
    for name in victim:
        linear = decoder_layers(damaged)[1].get_submodule(name)
        linear.weight.data = pseudo_quantize(linear.weight.data, QuantSpec(2, -1))
    folded = {i: decoder_layers(reference)[i] for i in range(3)}
    ranking = group_sensitivity(reference, folded, damaged, ids)
    assert ranking[0].layer == 1 and ranking[0].group == "mlp.experts.2.gate_proj+up_proj+down_proj"
    assert all(abs(s.delta_nll) < 1e-9 for s in ranking[1:])
