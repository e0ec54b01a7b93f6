"""AutoAWQ GEMM layout (``version: "gemm"``), the de facto AWQ checkpoint.

Written by AutoAWQ ``WQLinear_GEMM.from_linear`` (also GPTQModel, AutoRound); read by
vLLM (awq, awq_marlin, awq_triton), transformers (via GPTQModel) and AutoAWQ.

    tensor    shape          dtype   content
    qweight   [K, N / 8]     int32   codes packed along N (outputs), nibble order ORDER
    qzeros    [K / G, N / 8] int32   zeros packed along N, same order
    scales    [K / G, N]     fp16    scales
    bias      [N]            fp16    optional, not handled here

Nibble i (bits 4i..4i+3) of word (k, j) holds output channel 8j + ORDER[i]. 4-bit only.
Zeros are the plain integer zero (no GPTQ-v1 minus one).
"""
from __future__ import annotations

import torch

from awq_ref.formats.nibbles import pack_last, unpack_last
from awq_ref.primitives.quant import QuantizedWeight, QuantSpec

ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
TENSOR_NAMES = ("qweight", "qzeros", "scales")


def _check(qw: QuantizedWeight) -> None:
    if qw.spec.bits != 4:
        raise ValueError(f"the GEMM layout stores 4-bit codes only, got {qw.spec.bits} bits")
    if qw.shape[0] % 8:
        raise ValueError(f"out_features {qw.shape[0]} must be a multiple of 8 for the GEMM layout")


def pack(qw: QuantizedWeight, scale_dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    _check(qw)
    return {
        "qweight": pack_last(qw.q.t(), 4, ORDER),
        "qzeros": pack_last(qw.zeros.t(), 4, ORDER),
        "scales": qw.scales.t().to(scale_dtype).contiguous(),
    }


def shapes(in_features: int, out_features: int, group_width: int) -> dict[str, tuple[int, int]]:
    groups = in_features // group_width
    return {
        "qweight": (in_features, out_features // 8),
        "qzeros": (groups, out_features // 8),
        "scales": (groups, out_features),
    }


def unpack(tensors: dict[str, torch.Tensor], spec: QuantSpec) -> QuantizedWeight:
    q = unpack_last(tensors["qweight"], 4, ORDER).t().contiguous()
    zeros = unpack_last(tensors["qzeros"], 4, ORDER).t().contiguous()
    scales = tensors["scales"].t().contiguous()
    return QuantizedWeight(q=q, scales=scales, zeros=zeros, spec=spec)
