"""MoE blocks as one linear per expert (``awq_ref.model.experts``), their scaling groups as data, and
the fold: every expert's gate/up balanced against the post-attention norm, the router and the
shared-expert gate compensated, exactly (float64)."""
from __future__ import annotations

import pytest
import torch
from safetensors import safe_open
from torch import nn

from awq_harness.awq_ref.data.tiny import MOE_FAMILIES, save_tiny_model, tiny_model
from awq_harness.awq_ref.methods.awq.fold import fold_scales
from awq_harness.awq_ref.model.arch import MOE_LAYOUTS, decoder_layers, float_readers, linears_in, scaling_groups
from awq_harness.awq_ref.model.compat import causal_lm_from_pretrained

IDS = torch.randint(0, 512, (2, 24), generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_view_computes_what_transformers_loads_from_the_same_folder(family, tmp_path):
    """The per-expert view and transformers' own model (fused experts in 5.x, merged on load from the
    per-expert names the view saves) give the same logits; the folder holds the checkpoint's names."""
    model = tiny_model(family, seed=2)
    save_tiny_model(tmp_path, family, seed=2)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        names = set(f.keys())
    assert names == set(model.state_dict())
    layout = MOE_LAYOUTS[type(model).__name__]
    assert {f"model.layers.0.{layout.block}.experts.3.{p}.weight" for p in layout.experts} <= names
    assert f"model.layers.0.{layout.block}.gate.weight" in names
    loaded = causal_lm_from_pretrained(tmp_path, torch.float32).eval()
    with torch.no_grad():
        assert torch.equal(model(IDS).logits, loaded(IDS).logits)


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_routers_and_gates_are_float_readers_not_linears_to_quantise(family):
    model = tiny_model(family)
    layer = decoder_layers(model)[0]
    names = set(linears_in(layer))
    layout = MOE_LAYOUTS[type(model).__name__]
    assert not [n for n in names if n.rpartition(".")[2] in ("gate", "shared_expert_gate")]
    assert len([n for n in names if ".experts." in n]) == 3 * 4
    assert float_readers(model) == [f"{layout.block}.{g}" for g in (layout.router, layout.shared_gate) if g]


def test_qwen2_moe_groups_name_every_expert_the_shared_expert_and_compensate_both_gates():
    model = tiny_model("qwen2_moe")
    groups = scaling_groups(model, decoder_layers(model)[0])
    norm = next(g for g in groups if g.prev == "post_attention_layernorm")
    experts = [f"mlp.experts.{e}.{p}" for e in range(4) for p in ("gate_proj", "up_proj")]
    assert norm.balance == (*experts, "mlp.shared_expert.gate_proj", "mlp.shared_expert.up_proj")
    assert norm.compensate == ("mlp.gate", "mlp.shared_expert_gate") and norm.x_name == "mlp"
    downs = [(g.prev, g.balance) for g in groups if g.balance[0].endswith("down_proj")]
    assert downs == [(f"mlp.experts.{e}.up_proj", (f"mlp.experts.{e}.down_proj",)) for e in range(4)] + [
        ("mlp.shared_expert.up_proj", ("mlp.shared_expert.down_proj",))]


def _random_fold(model, compensate: bool = True) -> None:
    gen = torch.Generator().manual_seed(11)
    for layer in decoder_layers(model):
        for group in scaling_groups(model, layer):
            k = layer.get_submodule(group.balance[0]).in_features
            s = torch.exp(2.0 * torch.randn(k, generator=gen)).double()
            fold_scales(layer, group if compensate else _without_compensation(group), s)


def _without_compensation(group):
    from dataclasses import replace

    return replace(group, compensate=())


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_moe_fold_is_exact_in_float64_and_routing_changes_without_compensation(family):
    """Scales e^(2 N(0,1)) folded into every group: the same logits to float64 rounding (routing
    included). Folded without compensating the router (and shared gate), the function changes."""
    model = tiny_model(family, seed=3).double()
    with torch.no_grad():
        before = model(IDS).logits
        _random_fold(model)
        after = model(IDS).logits
    torch.testing.assert_close(after, before, rtol=1e-9, atol=1e-11)
    broken = tiny_model(family, seed=3).double()
    with torch.no_grad():
        _random_fold(broken, compensate=False)
        assert (broken(IDS).logits - before).abs().max() > 1e-2


def test_fused_experts_are_refused_with_a_clear_error():
    from transformers import AutoModelForCausalLM

    from awq_harness.awq_ref.data.tiny import tiny_config
    from awq_harness.awq_ref.errors import ModelError
    from awq_harness.awq_ref.model.compat import TRANSFORMERS_MAJOR

    if TRANSFORMERS_MAJOR < 5:
        pytest.skip("transformers 4.x holds one linear per expert")
    fused = AutoModelForCausalLM.from_config(tiny_config("qwen3_moe"))
    assert not isinstance(fused.model.layers[0].mlp.experts, nn.ModuleList)
    with pytest.raises(ModelError, match="fused"):
        scaling_groups(fused, decoder_layers(fused)[0])
