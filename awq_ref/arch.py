"""What the reference needs to know about a model family: where its decoder layers live.

The AWQ-search issue extends each entry with its scaling groups. An unknown architecture
gets an error that names what is missing, rather than a guess.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from awq_ref.errors import ModelError


@dataclass(frozen=True)
class Architecture:
    name: str
    layers_path: str  # attribute path from the CausalLM to the ModuleList of decoder layers


LLAMA_LIKE = Architecture("llama", "model.layers")
OPT = Architecture("opt", "model.decoder.layers")

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


def layer_prefix(model: nn.Module) -> str:
    return architecture_of(model).layers_path


def linears_in(layer: nn.Module) -> dict[str, nn.Linear]:
    """The plain nn.Linear modules of one decoder layer, by name relative to the layer."""
    return {name: m for name, m in layer.named_modules() if type(m) is nn.Linear}
