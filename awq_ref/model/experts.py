"""Mixture-of-experts blocks seen as one linear per expert, named as checkpoints name them.

transformers 5 holds a block's experts as two fused 3-D parameters, ``experts.gate_up_proj``
[E, 2I, H] (gate rows first, then up) and ``experts.down_proj`` [E, H, I], and merges the per-expert
tensors of a checkpoint into them on load (``conversion_mapping``: Mixtral ``experts.<e>.w1|w3`` and
Qwen-MoE ``experts.<e>.gate_proj|up_proj`` into ``gate_up_proj``, ``w2`` / ``down_proj`` into
``down_proj``; Mixtral's ``block_sparse_moe`` renamed ``mlp``). transformers 4.51, vLLM and AutoAWQ
read one linear per expert under the checkpoint's names, and quantised checkpoints store exactly
those (``experts.<e>.gate_proj.qweight``...): a packed 4-bit expert is a linear, not a slice of a
3-D tensor.

``per_expert_view`` rebuilds each fused block as ``PerExpert``: a ModuleList of ``ExpertMlp`` with
nn.Linear ``gate``/``up``/``down`` under the family's names (``arch.MOE_LAYOUTS``), the same
function (down(act(gate x) * up x) times the routing weight, summed over the chosen experts), and
Mixtral's block back under ``block_sparse_moe``. Then the layer walk, every method, the checkpoint
plan and the lazy reader see plain linears whose state-dict names are the checkpoint's, and each
expert's forward hook sees only the tokens routed to it. Models whose experts are already linears
(transformers 4.51) are left as they are.
"""
from __future__ import annotations

import torch
from torch import nn

from awq_harness.awq_ref.model.arch import MOE_LAYOUTS, decoder_layers


class ExpertMlp(nn.Module):
    """One expert: down(act(gate(x)) * up(x)), its linears under the checkpoint's names."""

    def __init__(self, names: tuple[str, str, str], hidden: int, inner: int, act, device=None, dtype=None):
        super().__init__()
        self.names, self.act_fn = names, act
        gate, up, down = names
        for name, (i, o) in ((gate, (hidden, inner)), (up, (hidden, inner)), (down, (inner, hidden))):
            self.add_module(name, nn.Linear(i, o, bias=False, device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up, down = (getattr(self, n) for n in self.names)
        return down(self.act_fn(gate(x)) * up(x))


class PerExpert(nn.ModuleList):
    """The experts of one block, called as transformers 5 calls its fused experts module:
    (tokens [N, H], chosen experts [N, k], their routing weights [N, k]) -> [N, H]."""

    def forward(self, hidden: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(hidden)
        for e, expert in enumerate(self):
            token, slot = torch.where(top_k_index == e)
            if token.numel():
                y = expert(hidden[token]) * top_k_weights[token, slot, None]
                out.index_add_(0, token, y.to(out.dtype))
        return out


def _per_expert(fused: nn.Module, names: tuple[str, str, str]) -> PerExpert:
    gate_up, down = fused.gate_up_proj, fused.down_proj
    n, two_inner, hidden = gate_up.shape
    inner = two_inner // 2
    experts = PerExpert(ExpertMlp(names, hidden, inner, fused.act_fn, gate_up.device, gate_up.dtype)
                        for _ in range(n))
    if gate_up.device.type != "meta":
        with torch.no_grad():
            for e, expert in enumerate(experts):
                gate, up, dn = (getattr(expert, name) for name in names)
                gate.weight.copy_(gate_up[e, :inner])
                up.weight.copy_(gate_up[e, inner:])
                dn.weight.copy_(down[e])
    return experts


_ALIASED: dict[type, type] = {}


def _store_block_as(layer: nn.Module, runtime: str, stored: str) -> None:
    """Register the block ``runtime`` (the name the layer's forward uses) under ``stored`` (the
    checkpoint's name); the layer's class gets a read-only alias so its forward is unchanged."""
    cls = type(layer)
    if cls not in _ALIASED:
        _ALIASED[cls] = type(cls.__name__, (cls,), {runtime: property(lambda self: getattr(self, stored))})
    block = layer._modules.pop(runtime)
    layer.__class__ = _ALIASED[cls]
    layer.add_module(stored, block)


def per_expert_view(model: nn.Module) -> nn.Module:
    """``model`` with every fused experts module replaced by ``PerExpert`` (in place; on ``meta``
    the new linears are on ``meta`` too). A family without a MoE layout is returned unchanged."""
    layout = MOE_LAYOUTS.get(type(model).__name__)
    if layout is None:
        return model
    for layer in decoder_layers(model):
        runtime = layout.runtime_block
        block = getattr(layer, runtime, None)
        experts = getattr(block, "experts", None)
        if experts is None or not isinstance(getattr(experts, "gate_up_proj", None), nn.Parameter):
            continue
        block.experts = _per_expert(experts, layout.roles)
        if runtime != layout.block:
            _store_block_as(layer, runtime, layout.block)
    return model
