"""GPTQ layout (AutoGPTQ / GPTQModel ``format: "gptq"``, and ``"gptq_v2"``).

Written by AutoGPTQ ``QuantLinear.pack`` and GPTQModel; read by vLLM (gptq, gptq_marlin)
and transformers (via GPTQModel).

    tensor    shape              dtype   content
    qweight   [K / 8, N]         int32   codes packed along K (inputs), natural nibble order
    qzeros    [K / G, N / 8]     int32   stored zeros packed along N, natural order
    scales    [K / G, N]         fp16    scales
    g_idx     [K]                int32   group of each input, k // G (no act-order here)
    bias      [N]                fp16    optional, not handled here

Stored zeros: v1 (``checkpoint_format: "gptq"``) stores z - 1 and loaders add 1 back, so
it can only represent z in [1, 16]; a group whose zero is 0 cannot be written (the
upstream packer then corrupts the neighbouring nibble). v2 (``"gptq_v2"``) stores z.
Symmetric 4-bit has z = 8, stored 7 in v1 (every qzeros word 0x77777777). 4-bit only.
"""
from __future__ import annotations

import torch

from awq_ref.formats.nibbles import pack_last, unpack_last
from awq_ref.primitives.quant import QuantizedWeight, QuantSpec

TENSOR_NAMES = ("qweight", "qzeros", "scales", "g_idx")
FORMATS = {"gptq": 1, "gptq_v2": 0}  # checkpoint_format -> offset subtracted from z on disk


def _offset(checkpoint_format: str) -> int:
    try:
        return FORMATS[checkpoint_format]
    except KeyError:
        raise ValueError(f"unknown GPTQ checkpoint_format {checkpoint_format!r}; known: {sorted(FORMATS)}") from None


def _check(qw: QuantizedWeight, offset: int) -> None:
    if qw.spec.bits != 4:
        raise ValueError(f"the GPTQ layout is written here for 4-bit codes only, got {qw.spec.bits} bits")
    n, k = qw.shape
    if n % 8 or k % 8:
        raise ValueError(f"GPTQ packing needs in and out features divisible by 8, got [{n}, {k}]")
    if offset and qw.zeros.numel() and int(qw.zeros.min()) < offset:
        raise ValueError("a zero point of 0 cannot be stored in GPTQ v1 (it stores z - 1); use gptq_v2")


def shapes(in_features: int, out_features: int, group_width: int) -> dict[str, tuple[int, ...]]:
    groups = in_features // group_width
    return {
        "qweight": (in_features // 8, out_features),
        "qzeros": (groups, out_features // 8),
        "scales": (groups, out_features),
        "g_idx": (in_features,),
    }


def pack(qw: QuantizedWeight, scale_dtype: torch.dtype = torch.float16,
         checkpoint_format: str = "gptq") -> dict[str, torch.Tensor]:
    offset = _offset(checkpoint_format)
    _check(qw, offset)
    k = qw.shape[1]
    return {
        "qweight": pack_last(qw.q, 4).t().contiguous(),
        "qzeros": pack_last((qw.zeros - offset).t(), 4),
        "scales": qw.scales.t().to(scale_dtype).contiguous(),
        "g_idx": (torch.arange(k, dtype=torch.int32) // qw.group_width).to(torch.int32),
    }


def unpack(tensors: dict[str, torch.Tensor], spec: QuantSpec, checkpoint_format: str = "gptq") -> QuantizedWeight:
    offset = _offset(checkpoint_format)
    q = unpack_last(tensors["qweight"].t().contiguous(), 4)
    zeros = unpack_last(tensors["qzeros"], 4).t().contiguous() + offset
    scales = tensors["scales"].t().contiguous()
    return QuantizedWeight(q=q, scales=scales, zeros=zeros, spec=spec)
