"""A mixed-precision plan: the fewest modules to keep in float (or at 8 bits) to recover a share of the gap.

Greedy on a sensitivity ranking: keep the first k candidates in float, for k = 1, 2, ...,
measuring the real perplexity of each candidate plan (the quantised model with those modules
replaced by float ones) on the *selection* windows, until
``(ppl_q - ppl_plan) / (ppl_q - ppl_fp) >= target``. Candidates are whole decoder layers
(``plan_keep_layers``, in ranking order) or linear groups (``plan_keep_groups``, in order of
NLL increase per extra byte, each kept group in the checkpoint's folded float basis, see
``awq_ref.pipeline.refold``). Given ``validation_ids`` (windows disjoint from the selection ones), the
chosen plan is measured again there, which shows how much of the recovery generalises.
The AWQ format has one bit width, so "kept" means float (``modules_to_not_convert``);
``keep_as="8bit"`` keeps them as an 8-bit compressed-tensors scheme instead
(``awq_ref.mixed_precision.keep_as``): the kept modules' linears are 8-bit RTN, measured the same way.
Size cost: each kept linear stores fp16 weights (or 8-bit codes and scales) instead of
4-bit codes, scales and zeros.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from awq_harness.awq_ref.mixed_precision.group_sensitivity import GroupSensitivity
from awq_harness.awq_ref.mixed_precision.keep_as import check_keep_as, kept_module, linear_bytes
from awq_harness.awq_ref.mixed_precision.layerwise import final_nll
from awq_harness.awq_ref.mixed_precision.sensitivity import LayerSensitivity, float_layer_inputs
from awq_harness.awq_ref.model.arch import decoder_layers, layer_prefix
from awq_harness.awq_ref.modules.qlinear import AwqLinear
from awq_harness.awq_ref.modules.swap import set_submodule


@dataclass(frozen=True)
class Recovery:
    ppl_reference: float
    ppl_quantized: float
    ppl_plan: float
    recovered: float          # share of the perplexity gap recovered
    windows: int
    seqlen: int

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Plan:
    keep_layers: list[int]
    ppl_reference: float      # this and the next three: on the selection windows
    ppl_quantized: float
    ppl_plan: float
    recovered: float
    extra_bytes: int          # checkpoint growth from keeping those modules in fp16 (or at 8 bits)
    quantized_bytes: int      # size of all quantised linears' tensors without the plan
    keep_linears: list[str] = field(default_factory=list)
    validation: Recovery | None = None
    keep_as: str = "float"    # how the kept modules are stored: "float" or "8bit"

    def kept_modules(self, prefix: str) -> list[str]:
        return [f"{prefix}.{i}." for i in self.keep_layers] + list(self.keep_linears)

    def modules_to_not_convert(self, prefix: str) -> list[str]:
        """AutoAWQ's float modules: the kept ones, unless they are kept at 8 bits."""
        return self.kept_modules(prefix) if self.keep_as == "float" else []

    def to_json(self) -> dict:
        return asdict(self)


def _ppl(model: nn.Module, ids: torch.Tensor, dtype: torch.dtype) -> float:
    _, final, _ = float_layer_inputs(model, ids, dtype)
    return math.exp(final_nll(model, final, ids) / (ids.numel() - ids.shape[0]))


def _awq_linears(module: nn.Module) -> list[AwqLinear]:
    return [m for m in module.modules() if isinstance(m, AwqLinear)]


def _packed_bytes(module: nn.Module) -> int:
    return sum(b.numel() * b.element_size() for m in _awq_linears(module) for b in (m.qweight, m.qzeros, m.scales))


def extra_bytes(module: nn.Module, keep_as: str = "float") -> int:
    """Growth from storing ``module``'s quantised linears as fp16 weights (or at 8 bits) instead."""
    kept = sum(linear_bytes(m.in_features, m.out_features, keep_as, m.spec) for m in _awq_linears(module))
    return kept - _packed_bytes(module)


def _four_bit_spec(quantized: nn.Module):
    linears = _awq_linears(quantized)
    return linears[0].spec if linears else None


def _as_kept(candidate: dict[str, nn.Module], keep_as: str, spec) -> dict[str, nn.Module]:
    return {name: kept_module(module, keep_as, spec) for name, module in candidate.items()}


@contextmanager
def float_modules(quantized: nn.Module, floats: dict[str, nn.Module]):
    """``quantized`` with the named submodules (layers or linears) temporarily replaced."""
    originals = {name: quantized.get_submodule(name) for name in floats}
    for name, module in floats.items():
        set_submodule(quantized, name, module)
    try:
        yield quantized
    finally:
        for name, module in originals.items():
            set_submodule(quantized, name, module)


def recovery(ppl_fp: float, ppl_q: float, ppl_plan: float) -> float:
    return (ppl_q - ppl_plan) / (ppl_q - ppl_fp) if ppl_q > ppl_fp else 1.0


@torch.no_grad()
def measure(reference, quantized, floats: dict[str, nn.Module], ids, dtype=torch.float32) -> Recovery:
    ppl_fp, ppl_q = _ppl(reference, ids, dtype), _ppl(quantized, ids, dtype)
    with float_modules(quantized, floats) as mixed:
        ppl_plan = _ppl(mixed, ids, dtype)
    return Recovery(ppl_fp, ppl_q, ppl_plan, recovery(ppl_fp, ppl_q, ppl_plan), ids.shape[0], ids.shape[1])


@torch.no_grad()
def greedy_plan(reference: nn.Module, quantized: nn.Module, candidates: list[dict[str, nn.Module]],
                ids: torch.Tensor, target: float, dtype=torch.float32, validation_ids=None,
                keep_as: str = "float") -> Plan:
    """Keep candidates (each: module name -> its float replacement) in order until ``target``,
    each as ``keep_as`` says (float, or its linears at 8 bits)."""
    check_keep_as(keep_as)
    spec = _four_bit_spec(quantized)
    ppl_fp, ppl_q = _ppl(reference, ids, dtype), _ppl(quantized, ids, dtype)
    kept: dict[str, nn.Module] = {}
    ppl_plan, recovered = ppl_q, 0.0
    for candidate in candidates:
        if recovered >= target:
            break
        kept.update(_as_kept(candidate, keep_as, spec))
        with float_modules(quantized, kept) as mixed:
            ppl_plan = _ppl(mixed, ids, dtype)
        recovered = recovery(ppl_fp, ppl_q, ppl_plan)
    validation = measure(reference, quantized, kept, validation_ids, dtype) if validation_ids is not None else None
    layers, linears = _split_names(quantized, kept)
    extra = sum(extra_bytes(quantized.get_submodule(name), keep_as) for name in kept)
    return Plan(layers, ppl_fp, ppl_q, ppl_plan, recovered, extra, _packed_bytes(decoder_layers(quantized)),
                linears, validation, keep_as)


def _split_names(model: nn.Module, names) -> tuple[list[int], list[str]]:
    prefix = layer_prefix(model)
    layers = sorted(int(n[len(prefix) + 1:]) for n in names if n.rpartition(".")[0] == prefix)
    return layers, sorted(n for n in names if n.rpartition(".")[0] != prefix)


def plan_keep_layers(reference: nn.Module, quantized: nn.Module, ranking: list[LayerSensitivity],
                     ids: torch.Tensor, target: float = 0.5, dtype: torch.dtype = torch.float32,
                     validation_ids: torch.Tensor | None = None, keep_as: str = "float") -> Plan:
    """Whole decoder layers, most harmful first; a kept layer is the float model's layer (or its 8-bit copy)."""
    ref_layers, prefix = decoder_layers(reference), layer_prefix(reference)
    candidates = [{f"{prefix}.{s.layer}": ref_layers[s.layer]} for s in ranking]
    return greedy_plan(reference, quantized, candidates, ids, target, dtype, validation_ids, keep_as)


def by_benefit_per_byte(quantized: nn.Module, ranking: list[GroupSensitivity],
                        keep_as: str = "float") -> list[GroupSensitivity]:
    def value(s: GroupSensitivity) -> float:
        return s.delta_nll / max(sum(extra_bytes(quantized.get_submodule(n), keep_as) for n in s.linears), 1)
    return sorted(ranking, key=value, reverse=True)


def plan_keep_groups(reference: nn.Module, folded: dict[int, nn.Module], quantized: nn.Module,
                     ranking: list[GroupSensitivity], ids: torch.Tensor, target: float = 0.5,
                     dtype: torch.dtype = torch.float32, validation_ids: torch.Tensor | None = None,
                     keep_as: str = "float") -> Plan:
    """Linear groups, most NLL per extra byte first; a kept linear is the folded float one (or its 8-bit copy)."""
    prefix = layer_prefix(reference)
    candidates = [{name: folded[s.layer].get_submodule(name[len(f"{prefix}.{s.layer}."):]) for name in s.linears}
                  for s in by_benefit_per_byte(quantized, ranking, keep_as)]
    return greedy_plan(reference, quantized, candidates, ids, target, dtype, validation_ids, keep_as)
