"""Which linear groups inside a decoder layer hurt most: one group quantised at a time.

The groups of a layer are AWQ's scaling groups' balance linears (Llama: q/k/v, gate/up,
down, and o when v -> o applies) plus every linear no group covers, alone (o_proj under
grouped-query attention). Method, as for whole layers (``awq_ref.mixed_precision.sensitivity``): run the float
model once and keep each layer's float input h_i; for group g of layer i, send h_i through
layer i in the checkpoint's folded float basis (``awq_ref.pipeline.refold``) with only g's linears
taken from the checkpoint, then through the float layers i+1..N; the score is the NLL increase
per token over the float model. Folded and float layers compute the same function, so every
other linear is exactly float.

Cost: only the ``top`` layers of the layer ranking are scored (default 6 of 30 in the CLI;
the greedy plan only reaches a few layers deep): for each, G x (N - i) layer forwards
(G = 4 on Llama; a MoE layer: attention groups plus one per expert), i.e. at most
``top`` x G x N layer forwards, about 1.6 x the layer ranking for top = 6 on SmolLM2,
plus rerunning those layers' scale search for the folded basis.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import asdict, dataclass

import torch
from torch import nn

from awq_harness.awq_ref.mixed_precision.layerwise import final_nll
from awq_harness.awq_ref.mixed_precision.sensitivity import float_layer_inputs
from awq_harness.awq_ref.model.arch import decoder_layers, layer_prefix, linears_in, scaling_groups
from awq_harness.awq_ref.model.walk import run_layer
from awq_harness.awq_ref.modules.swap import set_submodule


@dataclass(frozen=True)
class GroupSensitivity:
    layer: int
    group: str                 # e.g. "self_attn.q_proj+k_proj+v_proj"
    linears: tuple[str, ...]   # full module names (modules_to_not_convert entries)
    delta_nll: float           # NLL increase per token when only this group is quantised
    ppl: float

    def to_json(self) -> dict:
        return asdict(self)


EXPERT_UNIT = re.compile(r"^(.*\.(?:experts\.\d+|shared_expert))\.")


def by_expert(groups: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Scaling groups regrouped so that each expert (and the shared expert) is one group of all its
    linears, in order of first appearance; groups without expert linears stay as they are."""
    dense, experts = [], {}
    for group in groups:
        for name in group:
            unit = EXPERT_UNIT.match(name)
            if unit:
                experts.setdefault(unit.group(1), []).append(name)
        if not any(EXPERT_UNIT.match(name) for name in group):
            dense.append(group)
    return dense + [tuple(names) for names in experts.values()]


def linear_groups(model: nn.Module, layer: nn.Module) -> list[tuple[str, ...]]:
    """The layer's linears partitioned into scaling groups, then the linears no group covers. In a
    mixture-of-experts layer each expert is one group (its gate, up and down linears: what a plan
    keeps float together, and what routing makes a unit), the shared expert another."""
    groups = by_expert([g.balance for g in scaling_groups(model, layer)])
    covered = {name for g in groups for name in g}
    return groups + [(name,) for name in linears_in(layer) if name not in covered]


def group_label(names: tuple[str, ...]) -> str:
    head, _, _ = names[0].rpartition(".")
    return (head + "." if head else "") + "+".join(n.rpartition(".")[2] for n in names)


def _hybrid_layer(folded_layer: nn.Module, quantized_layer: nn.Module, names: tuple[str, ...]) -> nn.Module:
    hybrid = copy.deepcopy(folded_layer)
    for name in names:
        set_submodule(hybrid, name, quantized_layer.get_submodule(name))
    return hybrid


@torch.no_grad()
def group_sensitivity(reference: nn.Module, folded: dict[int, nn.Module], quantized: nn.Module, ids: torch.Tensor,
                      dtype: torch.dtype = torch.float32, on_group=None) -> list[GroupSensitivity]:
    """Scores for every linear group of the layers in ``folded`` (``refold.folded_layers``), most harmful first."""
    inputs, final, kwargs = float_layer_inputs(reference, ids, dtype)
    tokens = ids.numel() - ids.shape[0]
    base = final_nll(reference, final, ids)
    ref_layers, q_layers = decoder_layers(reference), decoder_layers(quantized)
    prefix, scores = layer_prefix(reference), []
    for i in sorted(folded):
        for names in linear_groups(reference, ref_layers[i]):
            h = run_layer(_hybrid_layer(folded[i], q_layers[i], names), inputs[i], kwargs)
            for layer in ref_layers[i + 1:]:
                h = run_layer(layer, h, kwargs)
            nll = final_nll(reference, h, ids)
            full = tuple(f"{prefix}.{i}.{n}" for n in names)
            scores.append(GroupSensitivity(i, group_label(names), full, (nll - base) / tokens, math.exp(nll / tokens)))
            if on_group:
                on_group(i, names)
    return sorted(scores, key=lambda s: s.delta_nll, reverse=True)
