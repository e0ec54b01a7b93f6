"""The tensors a checkpoint will hold (name -> shape, dtype), known before any weight is read.

Derived from the float model's skeleton (``meta`` tensors are enough): for the AutoAWQ
layouts, the skeleton with its linears swapped for empty AwqLinear modules exactly as the
loader builds it (``quantise_skeleton``); for the GPTQ layout, every decoder-layer linear's
weight replaced by ``qweight``/``qzeros``/``scales``/``g_idx`` of ``formats.gptq.shapes``; for the
compressed-tensors layout, each quantised linear's weight replaced by ``weight_packed``/
``weight_scale``/``weight_zero_point`` (asymmetric only)/``weight_shape`` at its own code width
(``formats.compressed_tensors.shapes``), and ``weight_g_idx`` where act-order permuted its groups.
Floats are stored as fp16 (``stored_tensor``, as AutoAWQ does). The plan covers the whole
state; the writer (``checkpoint.writer``) leaves out a tied output head, lays out its files
from the plan and refuses any tensor that does not match it.
"""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from accelerate import init_empty_weights
from torch import nn

from awq_harness.awq_ref.checkpoint.safetensors_stream import TensorSpec
from awq_harness.awq_ref.formats import compressed_tensors as ct_layout
from awq_harness.awq_ref.formats import gptq as gptq_layout
from awq_harness.awq_ref.model.arch import decoder_layers, layer_prefix, linears_in
from awq_harness.awq_ref.modules.qlinear import AwqLinear
from awq_harness.awq_ref.modules.swap import excluded, set_submodule
from awq_harness.awq_ref.primitives.quant import QuantSpec

if TYPE_CHECKING:
    from awq_harness.awq_ref.checkpoint.awq import AwqConfig

GPTQ_DTYPES = {"qweight": torch.int32, "qzeros": torch.int32, "scales": torch.float16, "g_idx": torch.int32}
CT_DTYPES = {"weight_packed": torch.int32, "weight_scale": torch.float16, "weight_zero_point": torch.int32,
             "weight_shape": torch.int64, "weight_g_idx": torch.int32}


def stored_tensor(t: torch.Tensor) -> torch.Tensor:
    """What a checkpoint stores for a tensor: floats as fp16 (AutoAWQ), integers as they are."""
    return (t.to(torch.float16) if t.is_floating_point() else t).contiguous()


def stored_spec(tensor: torch.Tensor) -> TensorSpec:
    return TensorSpec(tuple(tensor.shape), torch.float16 if tensor.is_floating_point() else tensor.dtype)


def tensors_plan(tensors: dict[str, torch.Tensor]) -> dict[str, TensorSpec]:
    """The plan of tensors already in memory, exactly as they are."""
    return {name: TensorSpec.of(t) for name, t in tensors.items()}


def quantise_skeleton(model: nn.Module, qcfg: "AwqConfig") -> None:
    """Swap the decoder layers' linears (except modules_to_not_convert) for empty AwqLinear modules."""
    prefix = layer_prefix(model)
    for i, layer in enumerate(decoder_layers(model)):
        for name, linear in linears_in(layer).items():
            if excluded(f"{prefix}.{i}.{name}", qcfg.modules_to_not_convert):
                continue
            module = AwqLinear(linear.in_features, linear.out_features, qcfg.spec, qcfg.version,
                               linear.bias is not None)
            set_submodule(layer, name, module)


def awq_plan(model: nn.Module, qcfg: "AwqConfig") -> dict[str, TensorSpec]:
    shaped = copy.deepcopy(model)
    with init_empty_weights(include_buffers=True):
        quantise_skeleton(shaped, qcfg)
    return {name: stored_spec(t) for name, t in shaped.state_dict(keep_vars=True).items()}


def decoder_linears(model: nn.Module) -> dict[str, nn.Linear]:
    prefix = layer_prefix(model)
    return {f"{prefix}.{i}.{name}": linear for i, layer in enumerate(decoder_layers(model))
            for name, linear in linears_in(layer).items()}


def gptq_plan(model: nn.Module, spec: QuantSpec) -> dict[str, TensorSpec]:
    linears, plan = decoder_linears(model), {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        module = name.rsplit(".", 1)[0]
        if module in linears and name.endswith(".weight"):
            plan.update(_gptq_packed(module, linears[module], spec))
        else:
            plan[name] = stored_spec(tensor)
    return plan


def _gptq_packed(module: str, linear: nn.Linear, spec: QuantSpec) -> dict[str, TensorSpec]:
    shapes = gptq_layout.shapes(linear.in_features, linear.out_features, spec.group_width(linear.in_features))
    return {f"{module}.{key}": TensorSpec(shape, GPTQ_DTYPES[key]) for key, shape in shapes.items()}


def ct_plan(model: nn.Module, specs: dict[str, QuantSpec],
            g_idx: frozenset[str] = frozenset()) -> dict[str, TensorSpec]:
    """``specs``: the quantised decoder linears (full names) and each one's scheme; every other
    linear stays float. ``g_idx``: the linears that store ``weight_g_idx``."""
    linears, plan = decoder_linears(model), {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        module = name.rsplit(".", 1)[0]
        if module in specs and module in linears and name.endswith(".weight"):
            plan.update(_ct_packed(module, linears[module], specs[module], module in g_idx))
        else:
            plan[name] = stored_spec(tensor)
    return plan


def _ct_packed(module: str, linear: nn.Linear, spec: QuantSpec, g_idx: bool) -> dict[str, TensorSpec]:
    k, n = linear.in_features, linear.out_features
    shapes = ct_layout.shapes(k, n, spec.group_width(k), spec.bits)
    if not spec.zero_point:
        del shapes["weight_zero_point"]
    if g_idx:
        shapes["weight_g_idx"] = (k,)
    return {f"{module}.{key}": TensorSpec(shape, CT_DTYPES[key]) for key, shape in shapes.items()}
