"""The tensors a checkpoint will hold (name -> shape, dtype), known before any weight is read.

Derived from the float model's skeleton (``meta`` tensors are enough): for the AutoAWQ
layouts, the skeleton with its linears swapped for empty AwqLinear modules exactly as the
loader builds it (``checkpoint.quantise_skeleton``); for the GPTQ layout, every
decoder-layer linear's weight replaced by ``qweight``/``qzeros``/``scales``/``g_idx`` of
``packing.gptq.shapes``. Floats are stored as fp16, and tied output embeddings are omitted,
as both savers do. The streaming writer lays out its files from this plan and refuses any
tensor that does not match it.
"""
from __future__ import annotations

import copy

import torch
from accelerate import init_empty_weights
from torch import nn

from awq_ref.checkpoint.awq import AwqConfig, quantise_skeleton, tied_output_keys
from awq_ref.checkpoint.safetensors_stream import TensorSpec
from awq_ref.formats import gptq as gptq_layout
from awq_ref.model.arch import decoder_layers, layer_prefix, linears_in
from awq_ref.primitives.quant import QuantSpec

GPTQ_DTYPES = {"qweight": torch.int32, "qzeros": torch.int32, "scales": torch.float16, "g_idx": torch.int32}


def stored_spec(tensor: torch.Tensor) -> TensorSpec:
    return TensorSpec(tuple(tensor.shape), torch.float16 if tensor.is_floating_point() else tensor.dtype)


def _saved_state(model: nn.Module) -> dict[str, torch.Tensor]:
    tied = set(tied_output_keys(model))
    return {name: t for name, t in model.state_dict(keep_vars=True).items() if name not in tied}


def awq_plan(model: nn.Module, qcfg: AwqConfig) -> dict[str, TensorSpec]:
    shaped = copy.deepcopy(model)
    with init_empty_weights(include_buffers=True):
        quantise_skeleton(shaped, qcfg)
    return {name: stored_spec(t) for name, t in _saved_state(shaped).items()}


def _decoder_linears(model: nn.Module) -> dict[str, nn.Linear]:
    prefix = layer_prefix(model)
    return {f"{prefix}.{i}.{name}": linear for i, layer in enumerate(decoder_layers(model))
            for name, linear in linears_in(layer).items()}


def gptq_plan(model: nn.Module, spec: QuantSpec) -> dict[str, TensorSpec]:
    linears, plan = _decoder_linears(model), {}
    for name, tensor in _saved_state(model).items():
        module = name.rsplit(".", 1)[0]
        if module in linears and name.endswith(".weight"):
            plan.update(_gptq_packed(module, linears[module], spec))
        else:
            plan[name] = stored_spec(tensor)
    return plan


def _gptq_packed(module: str, linear: nn.Linear, spec: QuantSpec) -> dict[str, TensorSpec]:
    shapes = gptq_layout.shapes(linear.in_features, linear.out_features, spec.group_width(linear.in_features))
    return {f"{module}.{key}": TensorSpec(shape, GPTQ_DTYPES[key]) for key, shape in shapes.items()}
