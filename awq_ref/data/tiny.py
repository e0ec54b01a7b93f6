"""Tiny seeded random models for fast tests, one per supported family.

Weights are drawn from our own seeded generator (not transformers' initialisers, which can
change between releases), so the same seed gives the same bytes on any machine. A few
input channels of every norm are amplified, giving the activation outliers AWQ exploits.
"""
from __future__ import annotations

import torch
from torch import nn

FAMILIES = ("llama", "qwen2", "opt", "qwen3", "gemma", "gemma2", "phi3", "gemma3")
MOE_FAMILIES = ("mixtral", "qwen2_moe", "qwen3_moe")
VOCAB = 512


_COMMON = {"vocab_size": VOCAB, "num_attention_heads": 4, "max_position_embeddings": 512,
           "tie_word_embeddings": False}
# Gemma, Gemma 2 and Gemma 3 ship with the output head tied to the input embedding, and vLLM's
# Gemma classes have no lm_head of their own, so the tiny Gemma models are tied as well.
_TIED = {"tie_word_embeddings": True}
# Explicit, version-independent configs (only keys transformers 4.4x and 5.x both read), so
# golden checkpoints can write exactly these bytes into config.json.
TINY_CONFIGS = {
    "llama": {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_key_value_heads": 2,
              "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "head_dim": 32,
              "attention_bias": False, "mlp_bias": False, "bos_token_id": 1, "eos_token_id": 2, **_COMMON},
    "qwen2": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "num_key_value_heads": 2,
              "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "use_sliding_window": False,
              "bos_token_id": 1, "eos_token_id": 2, **_COMMON},
    "qwen3": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "num_key_value_heads": 2,
              "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "head_dim": 32,
              "attention_bias": False, "use_sliding_window": False, "bos_token_id": 1, "eos_token_id": 2, **_COMMON},
    "gemma": {"architectures": ["GemmaForCausalLM"], "model_type": "gemma", "num_key_value_heads": 2,
              "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6,
              "rope_theta": 10000.0, "head_dim": 32, "attention_bias": False, "pad_token_id": 0,
              "bos_token_id": 1, "eos_token_id": 2, **_COMMON, **_TIED},
    "gemma2": {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "num_key_value_heads": 2,
               "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6,
               "rope_theta": 10000.0, "head_dim": 32, "attention_bias": False, "query_pre_attn_scalar": 32,
               "sliding_window": 512, "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0,
               "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, **_COMMON, **_TIED},
    "gemma3": {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "num_key_value_heads": 2,
               "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
               "rope_local_base_freq": 10000.0, "rope_scaling": None, "head_dim": 32, "attention_bias": False,
               "query_pre_attn_scalar": 32, "sliding_window": 512, "final_logit_softcapping": None,
               "attn_logit_softcapping": None, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, **_COMMON,
               **_TIED},
    "phi3": {"architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "num_key_value_heads": 4,
             "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": None,
             "original_max_position_embeddings": 512, "sliding_window": None, "resid_pdrop": 0.0,
             "embd_pdrop": 0.0, "attention_dropout": 0.0, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
             **_COMMON},
    "mixtral": {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_key_value_heads": 2,
                "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "head_dim": 32,
                "num_local_experts": 4, "num_experts_per_tok": 2, "sliding_window": None,
                "router_jitter_noise": 0.0, "bos_token_id": 1, "eos_token_id": 2, **_COMMON},
    "qwen2_moe": {"architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe", "num_key_value_heads": 2,
                  "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "use_sliding_window": False,
                  "num_experts": 4, "num_experts_per_tok": 2, "norm_topk_prob": False, "decoder_sparse_step": 1,
                  "mlp_only_layers": [], "qkv_bias": True, "bos_token_id": 1, "eos_token_id": 2, **_COMMON},
    "qwen3_moe": {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "num_key_value_heads": 2,
                  "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "head_dim": 32,
                  "attention_bias": False, "use_sliding_window": False, "num_experts": 4, "num_experts_per_tok": 2,
                  "norm_topk_prob": True, "decoder_sparse_step": 1, "mlp_only_layers": [],
                  "bos_token_id": 1, "eos_token_id": 2, **_COMMON},
    "opt": {"architectures": ["OPTForCausalLM"], "model_type": "opt", "activation_function": "relu",
            "do_layer_norm_before": True, "enable_bias": True, "layer_norm_elementwise_affine": True,
            "dropout": 0.0, "pad_token_id": 1, "bos_token_id": 2, "eos_token_id": 2, **_COMMON},
}


# transformers 5 runs Gemma 2's soft-capped attention eagerly (it refuses sdpa there); 4.51 picks sdpa,
# which silently drops the attention soft-capping. The tiny models ask for eager, so both lines compute the same.
ATTENTION = {"gemma2": "eager", "gemma3": "eager"}
NORM_OFFSET = {"gemma": 1.0, "gemma2": 1.0, "gemma3": 1.0}  # RMSNorm multiplies by (1 + w)


def tiny_config_dict(family: str, hidden: int = 128, intermediate: int = 256, layers: int = 2) -> dict:
    """The config of a tiny model as a plain dict: Llama has grouped-query attention (2 KV heads
    for 4 query heads), Qwen2 has q/k/v biases, OPT has LayerNorm with bias and fc1/fc2, Qwen3
    per-head q/k norms, Gemma (1 + w) norms, Gemma 2 four norms per layer and soft-capping,
    Phi-3 fused qkv_proj and gate_up_proj (full multi-head attention, so q|k|v -> o folds), Gemma 3
    text Gemma 2's four norms with Qwen3's q/k norms (local and global rope bases equal, and the
    window longer than any test sequence, so sliding and full layers compute alike on 4.51 and 5.x); the MoE
    families 4 experts, 2 chosen per token (Mixtral w1/w2/w3 under block_sparse_moe; Qwen2-MoE with a
    shared expert and its sigmoid gate; Qwen3-MoE q/k norms)."""
    if family not in TINY_CONFIGS:
        raise ValueError(f"unknown tiny family {family!r}; choose from {FAMILIES + MOE_FAMILIES}")
    sizes = {"hidden_size": hidden, "num_hidden_layers": layers}
    if family == "opt":
        sizes |= {"ffn_dim": intermediate, "word_embed_proj_dim": hidden}
    else:
        sizes |= {"intermediate_size": intermediate}
    if "head_dim" in TINY_CONFIGS[family]:
        sizes["head_dim"] = hidden // 4
    if family in ("qwen2_moe", "qwen3_moe"):  # experts (and the shared expert) half the dense width
        sizes |= {"moe_intermediate_size": intermediate // 2}
    if family == "qwen2_moe":
        sizes |= {"shared_expert_intermediate_size": intermediate}
    return {**TINY_CONFIGS[family], **sizes}


def tiny_config(family: str, **sizes):
    from transformers import AutoConfig

    return AutoConfig.for_model(**tiny_config_dict(family, **sizes))


@torch.no_grad()
def _fill(model: nn.Module, seed: int, norm_offset: float = 0.0) -> None:
    """``norm_offset``: the norms multiply by (offset + w) (Gemma: 1), so w is filled such that the
    norm's effective gain has the same statistics, outliers included, as every other family's."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters()):
        if p.dim() >= 2:
            p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
        elif "norm" in name and name.endswith("weight"):
            p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            p[torch.randperm(p.numel(), generator=gen)[: max(1, p.numel() // 32)]] *= 8
            if norm_offset:
                p.sub_(norm_offset)
        else:
            p.copy_(0.01 * torch.randn(p.shape, generator=gen))


def tiny_model(family: str = "llama", seed: int = 0, dtype: torch.dtype = torch.float32, **sizes) -> nn.Module:
    from awq_harness.awq_ref.model.compat import causal_lm_from_config
    from awq_harness.awq_ref.model.dtype import cast_model

    attention = {"attn_implementation": ATTENTION[family]} if family in ATTENTION else {}
    model = causal_lm_from_config(tiny_config(family, **sizes), torch.float32, **attention)
    _fill(model, seed, NORM_OFFSET.get(family, 0.0))
    return cast_model(model, dtype).eval()


def tiny_tokenizer():
    """A byte-level tokenizer for the tiny models: ids 0-2 are <unk> <s> </s>, then one id per
    byte (259 of the 512 ids are used). Needs no training and no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {ch: 3 + i for i, ch in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def save_tiny_model(folder, family: str = "llama", seed: int = 0, **sizes):
    """A tiny model folder as the CLI and third-party tools read it: weights, config, tokenizer."""
    tiny_model(family, seed=seed, **sizes).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder
