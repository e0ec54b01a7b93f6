"""How a plan keeps the modules it keeps: in float, or quantised to 8 bits.

``float``: AutoAWQ's format has one bit width, so a kept layer or linear is stored as fp16
weights and listed in ``modules_to_not_convert``.
``8bit``: compressed-tensors describes several ``config_groups``, so a kept module can be a
second, 8-bit scheme (W8A16) with the 4-bit scheme's group size and no zero point
(``uint8b128``, the 8-bit type vLLM's Marlin and Machete kernels take:
``pipeline.keep_ct.eight_bit_spec``). Each linear of the kept module is round-to-nearest
quantised to 8 bits with fp16 scales and dequantised, which is what a loader computes from the
stored codes. Its bytes are that layout's tensors (``formats.compressed_tensors`` at 8 bits:
four codes per int32 word, fp16 scales), against the 4-bit tensors it replaces.
``quantize --format compressed-tensors --keep-layers PLAN`` writes exactly these 8-bit modules
(``pipeline.keep_ct``).
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from awq_harness.awq_ref.formats import compressed_tensors
from awq_harness.awq_ref.pipeline.keep_ct import EIGHT_BITS, eight_bit_spec
from awq_harness.awq_ref.primitives.quant import QuantSpec, quantize

KEEP_AS = ("float", "8bit")
SCALE_DTYPE = torch.float16
SHAPE_BYTES = {"weight_packed": 4, "weight_scale": 2, "weight_zero_point": 4, "weight_shape": 8}


def _plain_linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if type(m) is nn.Linear]


@torch.no_grad()
def kept_module(module: nn.Module, keep_as: str, four_bit: QuantSpec) -> nn.Module:
    """The module as the plan keeps it: itself (float), or a copy with every linear at 8 bits."""
    if keep_as == "float":
        return module
    kept = copy.deepcopy(module)
    spec = eight_bit_spec(four_bit)
    for linear in _plain_linears(kept):
        w = linear.weight
        linear.weight.copy_(quantize(w.float(), spec, SCALE_DTYPE).dequantize(torch.float32).to(w.dtype))
    return kept


def linear_bytes(in_features: int, out_features: int, keep_as: str, four_bit: QuantSpec) -> int:
    """Stored bytes of one kept linear's weight: fp16, or the 8-bit compressed-tensors tensors."""
    if keep_as == "float":
        return 2 * in_features * out_features
    spec = eight_bit_spec(four_bit)
    shapes = compressed_tensors.shapes(in_features, out_features, spec.group_width(in_features), EIGHT_BITS)
    if not spec.zero_point:
        shapes.pop("weight_zero_point")
    return sum(SHAPE_BYTES[name] * int(torch.Size(shape).numel()) for name, shape in shapes.items())


def check_keep_as(keep_as: str) -> None:
    if keep_as not in KEEP_AS:
        raise ValueError(f"keep-as {keep_as!r}: choose from {', '.join(KEEP_AS)}")
