"""Tiny seeded random models for fast tests, in three families.

Weights are drawn from our own seeded generator (not transformers' initialisers, which can
change between releases), so the same seed gives the same bytes on any machine. A few
input channels of every norm are amplified, giving the activation outliers AWQ exploits.
"""
from __future__ import annotations

import torch
from torch import nn

FAMILIES = ("llama", "qwen2", "opt")
VOCAB = 512


def tiny_config(family: str, hidden: int = 128, intermediate: int = 256, layers: int = 2):
    from transformers import LlamaConfig, OPTConfig, Qwen2Config

    common = dict(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers,
                  num_attention_heads=4, max_position_embeddings=512, tie_word_embeddings=False)
    if family == "llama":  # grouped-query attention: 2 KV heads for 4 query heads
        return LlamaConfig(intermediate_size=intermediate, num_key_value_heads=2, **common)
    if family == "qwen2":  # q/k/v carry biases
        return Qwen2Config(intermediate_size=intermediate, num_key_value_heads=2, **common)
    if family == "opt":  # LayerNorm with bias, fc1/fc2, MHA
        return OPTConfig(ffn_dim=intermediate, word_embed_proj_dim=hidden, do_layer_norm_before=True, **common)
    raise ValueError(f"unknown tiny family {family!r}; choose from {FAMILIES}")


@torch.no_grad()
def _fill(model: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters()):
        if p.dim() >= 2:
            p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
        elif "norm" in name and name.endswith("weight"):
            p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            p[torch.randperm(p.numel(), generator=gen)[: max(1, p.numel() // 32)]] *= 8
        else:
            p.copy_(0.01 * torch.randn(p.shape, generator=gen))


def tiny_model(family: str = "llama", seed: int = 0, dtype: torch.dtype = torch.float32, **sizes) -> nn.Module:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(tiny_config(family, **sizes), dtype=torch.float32)
    _fill(model, seed)
    return model.to(dtype).eval()
