"""What the reference needs to know about a model family: where its decoder layers live,
and which linears AWQ scales together.

A scaling group (AutoAWQ ``get_layers_for_scaling``) is: the op whose output feeds the
group (``prev``: a norm or a linear), the linears that share that input (``balance``), and
the module whose output the scale search compares (``inspect``; AutoAWQ ``module2inspect``).
Groups per family follow AutoAWQ ``models/llama.py`` and ``models/opt.py``:

    llama/mistral/qwen2  input_layernorm -> q,k,v (inspect self_attn, with the layer kwargs)
                         v_proj -> o_proj     only when v and o weights have equal shapes
                         post_attention_layernorm -> gate,up (inspect mlp)
                         up_proj -> down_proj
    opt                  self_attn_layer_norm -> q,k,v (inspect self_attn)
                         v_proj -> out_proj   (same shape rule; always true for OPT)
                         final_layer_norm -> fc1;  fc1 -> fc2
    qwen3                as llama; q_norm/k_norm act on q/k outputs per head, after the
                         scaled input channels, so they need no compensation
    gemma                as llama, but the norms multiply by (1 + w) (``norm_offset`` 1)
    gemma2               input_layernorm -> q,k,v;  v_proj -> o_proj (same shape rule);
                         pre_feedforward_layernorm -> gate,up;  up_proj -> down_proj.
                         post_attention_layernorm and post_feedforward_layernorm normalise
                         the *outputs* of attention and MLP, so no linear reads them
    phi3                 input_layernorm -> qkv_proj (fused);  qkv_proj -> o_proj only when
                         the v slice of qkv_proj is as wide as o_proj's input (no GQA);
                         post_attention_layernorm -> gate_up_proj (fused);
                         gate_up_proj -> down_proj (only its last half, "up", is divided)

AutoAWQ folds qkv_proj -> o_proj for every Phi-3 (``models/phi3.py``), dividing the last
``hidden`` rows of qkv_proj: with grouped-query attention (Phi-3-medium: 40 heads, 10 KV heads)
those rows are k and part of q as well as v, so the fold is not exact there; the condition
``only_if_fused_v`` keeps the group only where the last rows are v alone.
The v -> o rule is AutoAWQ's and llm-awq's (weight shapes equal, which skips every GQA
model); llm-compressor only asks v.out_features == o.in_features. An unknown architecture
gets an error that names what is missing, rather than a guess.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from awq_harness.awq_ref.errors import ModelError


@dataclass(frozen=True)
class ScalingGroup:
    prev: str                  # norm or linear whose output is the balance linears' input
    balance: tuple[str, ...]   # linears scaled together (their input channels)
    inspect: str               # module whose output the scale search compares
    takes_kwargs: bool = False  # the inspected module needs the layer kwargs (attention)
    only_if_same_shape: bool = False  # AutoAWQ's v -> o rule
    only_if_fused_v: bool = False  # fused q|k|v -> o: only when the v slice is o's whole input (no GQA)
    norm_offset: float = 0.0  # the norm multiplies by (norm_offset + w): Gemma's (1 + w)

    def applies_to(self, layer: nn.Module) -> bool:
        prev, first = layer.get_submodule(self.prev), layer.get_submodule(self.balance[0])
        if self.only_if_same_shape:
            return prev.weight.shape == first.weight.shape
        if self.only_if_fused_v:  # q|k|v rows = (heads + 2 kv_heads) d, o input = heads d: equal heads iff 3x
            return prev.weight.shape[0] == 3 * first.weight.shape[1]
        return True


# Names containing one of these are not clipped (AutoAWQ/llm-awq: q.k is too sensitive).
CLIP_SKIP = ("q_", "k_", "query", "key", "Wqkv")


@dataclass(frozen=True)
class Architecture:
    name: str
    layers_path: str  # attribute path from the CausalLM to the ModuleList of decoder layers
    final_norm: str  # the norm between the last decoder layer and the output head
    scaling_groups: tuple[ScalingGroup, ...] = ()


LLAMA_GROUPS = (
    ScalingGroup("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
                 "self_attn", takes_kwargs=True),
    ScalingGroup("self_attn.v_proj", ("self_attn.o_proj",), "self_attn.o_proj", only_if_same_shape=True),
    ScalingGroup("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj"), "mlp"),
    ScalingGroup("mlp.up_proj", ("mlp.down_proj",), "mlp.down_proj"),
)
OPT_GROUPS = (
    ScalingGroup("self_attn_layer_norm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
                 "self_attn", takes_kwargs=True),
    ScalingGroup("self_attn.v_proj", ("self_attn.out_proj",), "self_attn.out_proj", only_if_same_shape=True),
    ScalingGroup("final_layer_norm", ("fc1",), "fc1"),
    ScalingGroup("fc1", ("fc2",), "fc2"),
)

GEMMA_GROUPS = tuple(ScalingGroup(g.prev, g.balance, g.inspect, g.takes_kwargs, g.only_if_same_shape,
                                  norm_offset=0.0 if "proj" in g.prev else 1.0) for g in LLAMA_GROUPS)
GEMMA2_GROUPS = (
    ScalingGroup("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
                 "self_attn", takes_kwargs=True, norm_offset=1.0),
    ScalingGroup("self_attn.v_proj", ("self_attn.o_proj",), "self_attn.o_proj", only_if_same_shape=True),
    ScalingGroup("pre_feedforward_layernorm", ("mlp.gate_proj", "mlp.up_proj"), "mlp", norm_offset=1.0),
    ScalingGroup("mlp.up_proj", ("mlp.down_proj",), "mlp.down_proj"),
)
PHI3_GROUPS = (
    ScalingGroup("input_layernorm", ("self_attn.qkv_proj",), "self_attn", takes_kwargs=True),
    ScalingGroup("self_attn.qkv_proj", ("self_attn.o_proj",), "self_attn.o_proj", only_if_fused_v=True),
    ScalingGroup("post_attention_layernorm", ("mlp.gate_up_proj",), "mlp"),
    ScalingGroup("mlp.gate_up_proj", ("mlp.down_proj",), "mlp.down_proj"),
)

LLAMA_LIKE = Architecture("llama", "model.layers", "model.norm", LLAMA_GROUPS)
QWEN3 = Architecture("qwen3", "model.layers", "model.norm", LLAMA_GROUPS)
GEMMA = Architecture("gemma", "model.layers", "model.norm", GEMMA_GROUPS)
GEMMA2 = Architecture("gemma2", "model.layers", "model.norm", GEMMA2_GROUPS)
PHI3 = Architecture("phi3", "model.layers", "model.norm", PHI3_GROUPS)
OPT = Architecture("opt", "model.decoder.layers", "model.decoder.final_layer_norm", OPT_GROUPS)

ARCHITECTURES = {
    "LlamaForCausalLM": LLAMA_LIKE,
    "MistralForCausalLM": LLAMA_LIKE,
    "Qwen2ForCausalLM": LLAMA_LIKE,
    "Qwen3ForCausalLM": QWEN3,
    "GemmaForCausalLM": GEMMA,
    "Gemma2ForCausalLM": GEMMA2,
    "Phi3ForCausalLM": PHI3,
    "OPTForCausalLM": OPT,
}


def architecture_of(model: nn.Module) -> Architecture:
    cls = type(model).__name__
    if cls not in ARCHITECTURES:
        raise ModelError(f"unsupported architecture {cls}: awq_ref knows {sorted(ARCHITECTURES)}; "
                         f"add an Architecture entry naming its decoder layers")
    return ARCHITECTURES[cls]


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    arch = architecture_of(model)
    obj = model
    for part in arch.layers_path.split("."):
        if not hasattr(obj, part):
            raise ModelError(f"{type(model).__name__} has no '{arch.layers_path}' (missing '{part}')")
        obj = getattr(obj, part)
    return obj


def final_norm(model: nn.Module) -> nn.Module:
    """The norm the last decoder layer's output goes through before the output head."""
    return model.get_submodule(architecture_of(model).final_norm)


def output_logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The model's logits from the last decoder layer's output: head(final_norm(h)), then Gemma 2's
    soft-capping c tanh(logits / c) where the config sets ``final_logit_softcapping``."""
    logits = model.get_output_embeddings()(final_norm(model)(hidden))
    cap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
    return cap * torch.tanh(logits / cap) if cap else logits


def layer_prefix(model: nn.Module) -> str:
    return architecture_of(model).layers_path


def linears_in(layer: nn.Module) -> dict[str, nn.Linear]:
    """The plain nn.Linear modules of one decoder layer, by name relative to the layer."""
    return {name: m for name, m in layer.named_modules() if type(m) is nn.Linear}


def scaling_groups(model: nn.Module, layer: nn.Module) -> list[ScalingGroup]:
    """The groups that apply to ``layer``; a clear error if the family has none or a module is missing."""
    arch = architecture_of(model)
    if not arch.scaling_groups:
        raise ModelError(f"{type(model).__name__}: no AWQ scaling groups are defined for architecture "
                         f"{arch.name!r}; add ScalingGroup entries (prev op, balance linears, inspect module)")
    for group in arch.scaling_groups:
        for name in (group.prev, group.inspect, *group.balance):
            try:
                layer.get_submodule(name)
            except AttributeError:
                raise ModelError(f"{type(model).__name__}: decoder layer has no module {name!r} "
                                 f"needed by the AWQ scaling group {group.prev} -> {group.balance}") from None
    return [g for g in arch.scaling_groups if g.applies_to(layer)]


def clipped(name: str) -> bool:
    """Whether AWQ's clip search runs on this linear (not on q/k, as in AutoAWQ)."""
    return not any(part in name for part in CLIP_SKIP)


@dataclass(frozen=True)
class MoeLayout:
    """How a mixture-of-experts family's checkpoint names its experts, as the declared loaders read
    them: transformers 4.51 (one linear per expert), transformers 5.x (which merges those names into
    fused 3-D parameters on load: ``conversion_mapping``) and vLLM. ``block``: the MoE block under
    each decoder layer; ``experts``: each expert's linears (``block.experts.<e>.<name>``); ``router``
    and ``shared_gate``: float linears that read the same norm output as the experts; ``count_keys``:
    the config keys holding the expert count."""

    block: str
    experts: tuple[str, ...]
    router: str
    count_keys: tuple[str, ...]
    shared_expert: str | None = None
    shared_gate: str | None = None


MOE_LAYOUTS = {
    "MixtralForCausalLM": MoeLayout("block_sparse_moe", ("w1", "w2", "w3"), "gate", ("num_local_experts",)),
    "Qwen2MoeForCausalLM": MoeLayout("mlp", ("gate_proj", "up_proj", "down_proj"), "gate", ("num_experts",),
                                     "shared_expert", "shared_expert_gate"),
    "Qwen3MoeForCausalLM": MoeLayout("mlp", ("gate_proj", "up_proj", "down_proj"), "gate", ("num_experts",)),
}
