"""Scaling groups per architecture, the v->o shape rule, and clear errors for the unknown."""
import pytest
import torch
from torch import nn

from awq_harness.awq_ref.data.tiny import tiny_model
from awq_harness.awq_ref.errors import ModelError
from awq_harness.awq_ref.model.arch import clipped, decoder_layers, final_norm, output_logits, scaling_groups


def test_llama_gqa_skips_v_to_o_like_autoawq():
    model = tiny_model("llama")
    groups = scaling_groups(model, decoder_layers(model)[0])
    assert [g.prev for g in groups] == ["input_layernorm", "post_attention_layernorm", "mlp.up_proj"]


def test_llama_mha_keeps_v_to_o():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=4)
    model = LlamaForCausalLM(cfg)
    groups = scaling_groups(model, decoder_layers(model)[0])
    assert ("self_attn.v_proj", ("self_attn.o_proj",)) in [(g.prev, g.balance) for g in groups]


def test_phi3_folds_qkv_into_o_only_without_gqa():
    """The last o.in_features rows of a fused q|k|v are v alone only when KV heads = heads."""
    from transformers import Phi3Config, Phi3ForCausalLM

    def groups(kv_heads):
        cfg = Phi3Config(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=kv_heads, pad_token_id=0)
        model = Phi3ForCausalLM(cfg)
        return [(g.prev, g.balance) for g in scaling_groups(model, decoder_layers(model)[0])]

    fused_v = ("self_attn.qkv_proj", ("self_attn.o_proj",))
    assert fused_v in groups(4) and fused_v not in groups(2)
    assert ("mlp.gate_up_proj", ("mlp.down_proj",)) in groups(2)


@pytest.mark.parametrize("family, norms", [("gemma", {"input_layernorm", "post_attention_layernorm"}),
                                           ("gemma2", {"input_layernorm", "pre_feedforward_layernorm"})])
def test_gemma_norm_groups_fold_one_plus_w(family, norms):
    model = tiny_model(family)
    groups = scaling_groups(model, decoder_layers(model)[0])
    assert {g.prev for g in groups if g.norm_offset == 1.0} == norms
    assert all(g.norm_offset == 0.0 for g in groups if g.prev.endswith("_proj"))


def test_opt_groups():
    model = tiny_model("opt")
    groups = scaling_groups(model, decoder_layers(model)[0])
    assert [(g.prev, g.balance) for g in groups] == [
        ("self_attn_layer_norm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
        ("self_attn.v_proj", ("self_attn.out_proj",)),
        ("final_layer_norm", ("fc1",)),
        ("fc1", ("fc2",)),
    ]


def test_unknown_architecture_names_what_is_missing():
    class GPTSomething(nn.Module):
        pass

    with pytest.raises(ModelError, match="unsupported architecture GPTSomething"):
        scaling_groups(GPTSomething(), nn.Module())


def test_missing_module_is_named():
    model = tiny_model("llama")
    layer = decoder_layers(model)[0]
    del layer.post_attention_layernorm
    with pytest.raises(ModelError, match="post_attention_layernorm"):
        scaling_groups(model, layer)


def test_q_and_k_are_never_clipped():
    assert not clipped("self_attn.q_proj") and not clipped("self_attn.k_proj")
    assert clipped("self_attn.v_proj") and clipped("mlp.down_proj") and clipped("fc1")



@pytest.mark.parametrize("family, path", [("llama", "model.norm"), ("qwen2", "model.norm"),
                                          ("opt", "model.decoder.final_layer_norm"), ("qwen3", "model.norm"),
                                          ("gemma", "model.norm"), ("gemma2", "model.norm"), ("phi3", "model.norm")])
def test_final_norm_is_the_norm_between_the_last_layer_and_the_head(family, path):
    """The model's own logits are head(final_norm(last decoder layer's output)), soft-capped for Gemma 2."""
    model, seen = tiny_model(family), {}
    decoder_layers(model)[-1].register_forward_hook(
        lambda module, args, out: seen.__setitem__("h", out[0] if isinstance(out, tuple) else out))
    ids = torch.randint(0, 512, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(ids).logits
        rebuilt = output_logits(model, seen["h"])
    assert final_norm(model) is model.get_submodule(path)
    torch.testing.assert_close(rebuilt, logits, rtol=0, atol=1e-5)
