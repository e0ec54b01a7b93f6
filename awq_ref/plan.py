"""A mixed-precision plan: the fewest layers to keep in float to recover a share of the gap.

Greedy on the sensitivity ranking: keep the k most harmful layers in float, for k = 1, 2, ...,
measuring the real perplexity of each candidate (the quantised model with those layers
replaced by the float ones), until ``(ppl_q - ppl_plan) / (ppl_q - ppl_fp) >= target``.
The AWQ format has one bit width, so "kept" means float (``modules_to_not_convert``).
Size cost: each kept linear stores fp16 weights instead of 4-bit codes, scales and zeros.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from awq_ref.arch import decoder_layers, layer_prefix
from awq_ref.layerwise import final_nll
from awq_ref.qlinear import AwqLinear
from awq_ref.sensitivity import LayerSensitivity, float_layer_inputs


@dataclass(frozen=True)
class Plan:
    keep_layers: list[int]
    ppl_reference: float
    ppl_quantized: float
    ppl_plan: float
    recovered: float          # share of the perplexity gap recovered
    extra_bytes: int          # checkpoint growth from keeping those layers in fp16
    quantized_bytes: int      # size of all quantised linears' tensors without the plan

    def modules_to_not_convert(self, prefix: str) -> list[str]:
        return [f"{prefix}.{i}." for i in self.keep_layers]

    def to_json(self) -> dict:
        return asdict(self)


def _ppl(model: nn.Module, ids: torch.Tensor, dtype: torch.dtype) -> float:
    _, final, _ = float_layer_inputs(model, ids, dtype)
    return math.exp(final_nll(model, final, ids) / (ids.numel() - ids.shape[0]))


def _packed_bytes(layer: nn.Module) -> int:
    return sum(b.numel() * b.element_size() for m in layer.modules() if isinstance(m, AwqLinear)
               for b in (m.qweight, m.qzeros, m.scales))


def _fp16_bytes(layer: nn.Module) -> int:
    return sum(2 * m.in_features * m.out_features for m in layer.modules() if isinstance(m, AwqLinear))


@torch.no_grad()
def plan_keep_layers(reference: nn.Module, quantized: nn.Module, ranking: list[LayerSensitivity],
                     ids: torch.Tensor, target: float = 0.5, dtype: torch.dtype = torch.float32) -> Plan:
    ref_layers, q_layers = decoder_layers(reference), decoder_layers(quantized)
    ppl_fp, ppl_q = _ppl(reference, ids, dtype), _ppl(quantized, ids, dtype)
    keep, ppl_plan, recovered = [], ppl_q, 0.0
    for score in ranking:
        if recovered >= target:
            break
        keep.append(score.layer)
        layers = [ref_layers[i] if i in keep else q_layers[i] for i in range(len(q_layers))]
        ppl_plan = _ppl_with_layers(quantized, layers, ids, dtype)
        recovered = (ppl_q - ppl_plan) / (ppl_q - ppl_fp) if ppl_q > ppl_fp else 1.0
    extra = sum(_fp16_bytes(q_layers[i]) - _packed_bytes(q_layers[i]) for i in keep)
    total = sum(_packed_bytes(layer) for layer in q_layers)
    return Plan(sorted(keep), ppl_fp, ppl_q, ppl_plan, recovered, extra, total)


def _ppl_with_layers(model: nn.Module, layers: list[nn.Module], ids: torch.Tensor, dtype) -> float:
    """Perplexity of ``model`` with its decoder layer list temporarily replaced by ``layers``."""
    holder = model.get_submodule(layer_prefix(model).rpartition(".")[0] or "")
    name = layer_prefix(model).rpartition(".")[2]
    original = getattr(holder, name)
    setattr(holder, name, nn.ModuleList(layers))
    try:
        return _ppl(model, ids, dtype)
    finally:
        setattr(holder, name, original)
