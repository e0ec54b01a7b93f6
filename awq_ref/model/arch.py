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

The v -> o rule is AutoAWQ's and llm-awq's (weight shapes equal, which skips every GQA
model); llm-compressor only asks v.out_features == o.in_features. An unknown architecture
gets an error that names what is missing, rather than a guess.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from awq_ref.errors import ModelError


@dataclass(frozen=True)
class ScalingGroup:
    prev: str                  # norm or linear whose output is the balance linears' input
    balance: tuple[str, ...]   # linears scaled together (their input channels)
    inspect: str               # module whose output the scale search compares
    takes_kwargs: bool = False  # the inspected module needs the layer kwargs (attention)
    only_if_same_shape: bool = False  # AutoAWQ's v -> o rule

    def applies_to(self, layer: nn.Module) -> bool:
        if not self.only_if_same_shape:
            return True
        prev, first = layer.get_submodule(self.prev), layer.get_submodule(self.balance[0])
        return prev.weight.shape == first.weight.shape


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

LLAMA_LIKE = Architecture("llama", "model.layers", "model.norm", LLAMA_GROUPS)
OPT = Architecture("opt", "model.decoder.layers", "model.decoder.final_layer_norm", OPT_GROUPS)

ARCHITECTURES = {
    "LlamaForCausalLM": LLAMA_LIKE,
    "MistralForCausalLM": LLAMA_LIKE,
    "Qwen2ForCausalLM": LLAMA_LIKE,
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
