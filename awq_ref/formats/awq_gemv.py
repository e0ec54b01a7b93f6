"""AutoAWQ GEMV layout (``version: "gemv"``), also llm-awq's Sep 2023 - Feb 2024 layout.

Written by AutoAWQ ``WQLinear_GEMV.from_linear``; run only by AutoAWQ's CUDA kernels
(``awq_ext``). vLLM cannot load it, so we read, write and verify it, but do not serve it.

    tensor    shape           dtype   content
    qweight   [N, K / 8]      int32   codes packed along K (inputs), natural nibble order
    qzeros    [N, ZW]         int32   zeros packed along the group axis, natural order, 0-padded
    scales    [N, ZW * 8]     fp16    scales, padded columns are 0
    bias      [N]             fp16    optional, not handled here

ZW = ceil(ceil((K / G) / 8) / m) * m with m = 1 for G >= 128, 2 for G = 64, 4 for G = 32
(AutoAWQ ``calculate_zeros_width``; per-channel uses G = K). 4-bit only.
"""
from __future__ import annotations

import torch

from awq_harness.awq_ref.formats import autoawq
from awq_harness.awq_ref.formats.dims import CODES_PER_WORD, FLOAT_SCALES, Dims, Shapes, two_d
from awq_harness.awq_ref.formats.nibbles import pack_last, unpack_last
from awq_harness.awq_ref.primitives.quant import QuantizedWeight, QuantSpec

NAME = "gemv"
TENSOR_NAMES = ("qweight", "qzeros", "scales")
REQUIRED = TENSOR_NAMES
PACKED, SCALES, ZEROS = "qweight", "scales", "qzeros"
PACK_AXIS = "in"  # codes packed along K; zeros along the (padded) group axis
ASYMMETRIC_ONLY: tuple[str, ...] = ()
RECOMMENDED: tuple[str, ...] = ()
VALUES: tuple[str, ...] = ()
DTYPES = {"qweight": {"I32"}, "qzeros": {"I32"}, "scales": FLOAT_SCALES}
_MULTIPLIER = {64: 2, 32: 4}


def zeros_width(in_features: int, group_width: int) -> int:
    if group_width < 128 and group_width not in _MULTIPLIER:
        raise ValueError(f"the GEMV layout supports group sizes 32, 64 and >= 128, got {group_width}")
    m = 1 if group_width >= 128 else _MULTIPLIER[group_width]
    base = -(-(in_features // group_width) // 8)
    return -(-base // m) * m


def shapes(in_features: int, out_features: int, group_width: int) -> dict[str, tuple[int, int]]:
    zw = zeros_width(in_features, group_width)
    return {"qweight": (out_features, in_features // 8), "qzeros": (out_features, zw), "scales": (out_features, zw * 8)}


def optional_shapes(in_features: int, out_features: int) -> dict[str, tuple[int, ...]]:
    return {"bias": (out_features,)}


def dims(shapes: Shapes, values: dict | None = None) -> Dims | None:
    """N and K from qweight; the number of groups is not stored (scales are padded to ZW * 8)."""
    qw = shapes.get("qweight")
    return Dims(n=qw[0], k=qw[1] * CODES_PER_WORD, groups=None, pack=CODES_PER_WORD) if two_d(qw) else None


def alignment(n: int, k: int) -> list[tuple[str, str]]:
    """(tensor, reason) for each dimension this layout cannot pack."""
    return [("qweight", f"in_features {k} is not divisible by the pack factor 8")] if k % CODES_PER_WORD else []


def quantization_config(spec: QuantSpec) -> dict:
    return autoawq.quantization_config(NAME, spec)


def _pad_columns(t: torch.Tensor, width: int) -> torch.Tensor:
    out = torch.zeros(t.shape[0], width, dtype=t.dtype, device=t.device)
    out[:, : t.shape[1]] = t
    return out


def pack(qw: QuantizedWeight, scale_dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    if qw.spec.bits != 4:
        raise ValueError(f"the GEMV layout stores 4-bit codes only, got {qw.spec.bits} bits")
    n, k = qw.shape
    if k % 8:
        raise ValueError(f"in_features {k} must be a multiple of 8 for the GEMV layout")
    zw = zeros_width(k, qw.group_width)
    return {
        "qweight": pack_last(qw.q, 4),
        "qzeros": pack_last(_pad_columns(qw.zeros, zw * 8), 4),
        "scales": _pad_columns(qw.scales.to(scale_dtype), zw * 8),
    }


def unpack(tensors: dict[str, torch.Tensor], spec: QuantSpec) -> QuantizedWeight:
    q = unpack_last(tensors["qweight"], 4)
    k = q.shape[1]
    groups = k // spec.group_width(k)
    zeros = unpack_last(tensors["qzeros"], 4)[:, :groups].contiguous()
    scales = tensors["scales"][:, :groups].contiguous()
    return QuantizedWeight(q=q, scales=scales, zeros=zeros, spec=spec)


def scales_zeros(tensors: dict[str, torch.Tensor], groups: int,
                 checkpoint_format: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scales and zeros as [N, groups], padding dropped (one variant: ``checkpoint_format`` is ignored)."""
    return tensors["scales"][:, :groups], unpack_last(tensors["qzeros"], 4)[:, :groups]


def sample(tensors: dict[str, torch.Tensor], channels: int, groups: int, group_width: int) -> dict[str, torch.Tensor]:
    """The first ``channels`` outputs and the inputs of the first ``groups`` groups, still packed."""
    ks = groups * group_width
    return {"qweight": tensors["qweight"][:channels, : ks // CODES_PER_WORD], "qzeros": tensors["qzeros"][:channels],
            "scales": tensors["scales"][:channels]}


def decode(tensors: dict[str, torch.Tensor], spec: QuantSpec, checkpoint_format: str | None = None) -> QuantizedWeight:
    return unpack(tensors, spec)
