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
    gemma3               as gemma2 (text model, ``Gemma3ForCausalLM``); its q/k norms, like Qwen3's,
                         act on q/k outputs and need no compensation
    phi3                 input_layernorm -> qkv_proj (fused);  qkv_proj -> o_proj only when
                         the v slice of qkv_proj is as wide as o_proj's input (no GQA);
                         post_attention_layernorm -> gate_up_proj (fused);
                         gate_up_proj -> down_proj (only its last half, "up", is divided)
    mixtral, qwen2_moe,  attention as llama; post_attention_layernorm -> every expert's gate and up
    qwen3_moe            (Mixtral w1, w3; Qwen2-MoE also the shared expert's gate_proj, up_proj),
                         inspect the whole MoE block on every token (``input_of``), compensate the
                         router (and Qwen2-MoE's shared_expert_gate): float readers of the same
                         norm whose weight columns are multiplied by s; then per expert
                         up -> down (Mixtral w3 -> w2) on the tokens routed to it, and the shared
                         expert's up -> down. ``*`` in a name is every expert (``expand``); the
                         blocks hold one linear per expert (``model.experts``). AutoAWQ
                         (``models/mixtral.py``, ``qwen3_moe.py``) has the same balance linears
                         but never compensates the router; llm-compressor balances the router
                         and omits Qwen2-MoE's shared expert (tests/peers/test_family_equivalence.py)

AutoAWQ folds qkv_proj -> o_proj for every Phi-3 (``models/phi3.py``), dividing the last
``hidden`` rows of qkv_proj: with grouped-query attention (Phi-3-medium: 40 heads, 10 KV heads)
those rows are k and part of q as well as v, so the fold is not exact there; the condition
``only_if_fused_v`` keeps the group only where the last rows are v alone.
The v -> o rule is AutoAWQ's and llm-awq's (weight shapes equal, which skips every GQA
model); llm-compressor only asks v.out_features == o.in_features. An unknown architecture
gets an error that names what is missing, rather than a guess.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

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
    compensate: tuple[str, ...] = ()  # float readers of prev's output (routers, gates): weight columns * s
    input_of: str | None = None  # the module whose input is the group's X (default: the first balance linear)

    @property
    def x_name(self) -> str:
        return self.input_of or self.balance[0]

    def applies_to(self, layer: nn.Module) -> bool:
        prev, first = layer.get_submodule(self.prev), layer.get_submodule(self.balance[0])
        if self.only_if_same_shape:
            return prev.weight.shape == first.weight.shape
        if self.only_if_fused_v:  # q|k|v rows = (heads + 2 kv_heads) d, o input = heads d: equal heads iff 3x
            return prev.weight.shape[0] == 3 * first.weight.shape[1]
        return True


# Float readers: nn.Linear modules with these names (MoE routers, Qwen2-MoE's shared-expert gate) are
# never quantised (``linears_in`` leaves them out), so every method, the plan and the loaders keep them float.
FLOAT_READER_NAMES = ("gate", "shared_expert_gate")
EXPERT = "*"  # in a group's module names: every expert of the block (``expand``)

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


def _moe_groups(block: str, gate: str, up: str, down: str, shared: str | None = None,
                shared_gate: str | None = None) -> tuple[ScalingGroup, ...]:
    """Attention as Llama; the post-attention norm feeds every expert's gate and up linear (and the
    shared expert's), inspected through the whole MoE block, with the router (and the shared-expert
    gate) compensated: they read the same normalised tokens and stay float, so dividing the norm by s
    must multiply their weight columns by s, or routing changes. Then one up -> down group per expert
    (its routed tokens) and one for the shared expert."""
    experts = f"{block}.experts.{EXPERT}"
    balance = (f"{experts}.{gate}", f"{experts}.{up}")
    readers = (f"{block}.gate",)
    if shared:
        balance += (f"{block}.{shared}.gate_proj", f"{block}.{shared}.up_proj")
        readers += (f"{block}.{shared_gate}",)
    groups = LLAMA_GROUPS[:2] + (
        ScalingGroup("post_attention_layernorm", balance, block, compensate=readers, input_of=block),
        ScalingGroup(f"{experts}.{up}", (f"{experts}.{down}",), f"{experts}.{down}"),
    )
    if shared:
        groups += (ScalingGroup(f"{block}.{shared}.up_proj", (f"{block}.{shared}.down_proj",),
                                f"{block}.{shared}.down_proj"),)
    return groups


MIXTRAL_GROUPS = _moe_groups("block_sparse_moe", "w1", "w3", "w2")
QWEN2_MOE_GROUPS = _moe_groups("mlp", "gate_proj", "up_proj", "down_proj", "shared_expert", "shared_expert_gate")
QWEN3_MOE_GROUPS = _moe_groups("mlp", "gate_proj", "up_proj", "down_proj")
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
GEMMA3 = Architecture("gemma3", "model.layers", "model.norm", GEMMA2_GROUPS)
PHI3 = Architecture("phi3", "model.layers", "model.norm", PHI3_GROUPS)
MIXTRAL = Architecture("mixtral", "model.layers", "model.norm", MIXTRAL_GROUPS)
QWEN2_MOE = Architecture("qwen2_moe", "model.layers", "model.norm", QWEN2_MOE_GROUPS)
QWEN3_MOE = Architecture("qwen3_moe", "model.layers", "model.norm", QWEN3_MOE_GROUPS)
OPT = Architecture("opt", "model.decoder.layers", "model.decoder.final_layer_norm", OPT_GROUPS)

ARCHITECTURES = {
    "LlamaForCausalLM": LLAMA_LIKE,
    "MistralForCausalLM": LLAMA_LIKE,
    "Qwen2ForCausalLM": LLAMA_LIKE,
    "Qwen3ForCausalLM": QWEN3,
    "GemmaForCausalLM": GEMMA,
    "Gemma2ForCausalLM": GEMMA2,
    "Gemma3ForCausalLM": GEMMA3,
    "Phi3ForCausalLM": PHI3,
    "OPTForCausalLM": OPT,
    "MixtralForCausalLM": MIXTRAL,
    "Qwen2MoeForCausalLM": QWEN2_MOE,
    "Qwen3MoeForCausalLM": QWEN3_MOE,
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
    """The plain nn.Linear modules of one decoder layer that are quantised, by name relative to the
    layer: all but the float readers (``FLOAT_READER_NAMES``: routers and gates)."""
    return {name: m for name, m in layer.named_modules()
            if type(m) is nn.Linear and name.rpartition(".")[2] not in FLOAT_READER_NAMES}


def float_readers(model: nn.Module) -> list[str]:
    """The family's float linears as ``modules_to_not_convert`` records them (transformers' boundary
    match: ``mlp.gate`` is the router, not ``mlp.gate_proj``); empty for a family without any."""
    layout = MOE_LAYOUTS.get(type(model).__name__)
    if layout is None:
        return []
    return [f"{layout.block}.{name}" for name in (layout.router, layout.shared_gate) if name]


def expert_count(layer: nn.Module, group: ScalingGroup) -> int:
    """How many experts the block named before ``EXPERT`` in the group's names holds."""
    name = next(n for n in (group.prev, *group.balance) if EXPERT in n).split(f".{EXPERT}")[0]
    experts = layer.get_submodule(name)
    if not isinstance(experts, nn.ModuleList):
        raise ModelError(f"{name} is a fused {type(experts).__name__}, not one linear per expert: build the "
                         f"model with awq_ref.model.compat (per_expert_view)")
    return len(experts)


def expand(layer: nn.Module, group: ScalingGroup) -> list[ScalingGroup]:
    """A group whose names hold ``EXPERT``: when ``prev`` is an expert's linear, one group per
    expert; else one group whose balance lists that linear of every expert (expert-major)."""
    names = (group.prev, group.inspect, *group.balance)
    if not any(EXPERT in n for n in names):
        return [group]
    count = expert_count(layer, group)

    def at(name: str, e: int) -> str:
        return name.replace(EXPERT, str(e))

    if EXPERT in group.prev:
        return [replace(group, prev=at(group.prev, e), inspect=at(group.inspect, e),
                        balance=tuple(at(b, e) for b in group.balance)) for e in range(count)]
    per_expert = [b for b in group.balance if EXPERT in b]
    balance = tuple(at(b, e) for e in range(count) for b in per_expert)
    return [replace(group, balance=balance + tuple(b for b in group.balance if EXPERT not in b))]


def expanded_groups(model: nn.Module, layer: nn.Module) -> list[ScalingGroup]:
    """The family's groups with expert patterns expanded for ``layer`` (applicable or not)."""
    return [g for group in architecture_of(model).scaling_groups for g in expand(layer, group)]


def scaling_groups(model: nn.Module, layer: nn.Module) -> list[ScalingGroup]:
    """The groups that apply to ``layer``; a clear error if the family has none or a module is missing."""
    arch = architecture_of(model)
    if not arch.scaling_groups:
        raise ModelError(f"{type(model).__name__}: no AWQ scaling groups are defined for architecture "
                         f"{arch.name!r}; add ScalingGroup entries (prev op, balance linears, inspect module)")
    try:
        groups = expanded_groups(model, layer)
    except AttributeError as err:
        raise ModelError(f"{type(model).__name__}: decoder layer has no experts block needed by its AWQ scaling "
                         f"groups ({err})") from None
    for group in groups:
        for name in (group.prev, group.inspect, *group.balance, *group.compensate, group.x_name):
            try:
                layer.get_submodule(name)
            except AttributeError:
                raise ModelError(f"{type(model).__name__}: decoder layer has no module {name!r} "
                                 f"needed by the AWQ scaling group {group.prev} -> {group.balance}") from None
    return [g for g in groups if g.applies_to(layer)]


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
    roles: tuple[str, str, str] = ("gate_proj", "up_proj", "down_proj")  # each expert's gate, up, down
    runtime_block: str = "mlp"  # the block's attribute in transformers 5 (Mixtral: renamed from block_sparse_moe)


MOE_LAYOUTS = {
    "MixtralForCausalLM": MoeLayout("block_sparse_moe", ("w1", "w2", "w3"), "gate", ("num_local_experts",),
                                    roles=("w1", "w3", "w2")),
    "Qwen2MoeForCausalLM": MoeLayout("mlp", ("gate_proj", "up_proj", "down_proj"), "gate", ("num_experts",),
                                     "shared_expert", "shared_expert_gate"),
    "Qwen3MoeForCausalLM": MoeLayout("mlp", ("gate_proj", "up_proj", "down_proj"), "gate",
                                     ("num_experts", "num_local_experts")),
}
