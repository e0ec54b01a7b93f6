"""AutoAWQ GEMM layout (``version: "gemm"``), the de facto AWQ checkpoint.

Written by AutoAWQ ``WQLinear_GEMM.from_linear`` (also GPTQModel, AutoRound); read by
vLLM (awq, awq_marlin, awq_triton), transformers (via GPTQModel) and AutoAWQ.

    tensor    shape          dtype   content
    qweight   [K, N / 8]     int32   codes packed along N (outputs), nibble order ORDER
    qzeros    [K / G, N / 8] int32   zeros packed along N, same order
    scales    [K / G, N]     fp16    scales
    bias      [N]            fp16    optional, not handled here

Nibble i (bits 4i..4i+3) of word (k, j) holds output channel 8j + ORDER[i]; read the other
way, channel 8j + c sits in nibble COLUMN_NIBBLE[c]. 4-bit only. Zeros are the plain integer
zero (no GPTQ-v1 minus one). N must be a multiple of 8; any K, any group width dividing K.
"""
from __future__ import annotations

import torch

from awq_harness.awq_ref.formats import autoawq
from awq_harness.awq_ref.formats.dims import CODES_PER_WORD, FLOAT_SCALES, Dims, Shapes, two_d
from awq_harness.awq_ref.formats.nibbles import pack_last, unpack_last
from awq_harness.awq_ref.primitives.quant import QuantizedWeight, QuantSpec

NAME = "gemm"
ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
COLUMN_NIBBLE = tuple(ORDER.index(c) for c in range(CODES_PER_WORD))  # (0, 4, 1, 5, 2, 6, 3, 7)
# COLUMN_NIBBLE as one int (nibble c holds COLUMN_NIBBLE[c]), for kernels that look it up per column.
COLUMN_NIBBLE_WORD = sum(nibble << (4 * c) for c, nibble in enumerate(COLUMN_NIBBLE))
TENSOR_NAMES = ("qweight", "qzeros", "scales")
REQUIRED = TENSOR_NAMES
PACKED, SCALES, ZEROS = "qweight", "scales", "qzeros"
PACK_AXIS = "out"  # codes and zeros packed along N
ASYMMETRIC_ONLY: tuple[str, ...] = ()
RECOMMENDED: tuple[str, ...] = ()
VALUES: tuple[str, ...] = ()
DTYPES = {"qweight": {"I32"}, "qzeros": {"I32"}, "scales": FLOAT_SCALES}


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


def optional_shapes(in_features: int, out_features: int) -> dict[str, tuple[int, ...]]:
    return {"bias": (out_features,)}


def dims(shapes: Shapes, values: dict | None = None) -> Dims | None:
    """N from scales (else qweight's words x 8), K from qweight, groups from scales."""
    qw, sc = shapes.get("qweight"), shapes.get("scales")
    if not two_d(qw):
        return None
    n = sc[1] if two_d(sc) else qw[1] * CODES_PER_WORD
    return Dims(n=n, k=qw[0], groups=sc[0] if two_d(sc) else None, pack=n / qw[1])


def alignment(n: int, k: int) -> list[tuple[str, str]]:
    """(tensor, reason) for each dimension this layout cannot pack."""
    return [("qweight", f"out_features {n} is not divisible by the pack factor 8")] if n % CODES_PER_WORD else []


def quantization_config(spec: QuantSpec) -> dict:
    return autoawq.quantization_config(NAME, spec)


def unpack(tensors: dict[str, torch.Tensor], spec: QuantSpec) -> QuantizedWeight:
    q = unpack_last(tensors["qweight"], 4, ORDER).t().contiguous()
    zeros = unpack_last(tensors["qzeros"], 4, ORDER).t().contiguous()
    scales = tensors["scales"].t().contiguous()
    return QuantizedWeight(q=q, scales=scales, zeros=zeros, spec=spec)


def scales_zeros(tensors: dict[str, torch.Tensor], groups: int,
                 checkpoint_format: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scales and zeros as [N, groups] (one variant: ``checkpoint_format`` is ignored)."""
    return tensors["scales"].t(), unpack_last(tensors["qzeros"], 4, ORDER).t()


def sample(tensors: dict[str, torch.Tensor], channels: int, groups: int, group_width: int) -> dict[str, torch.Tensor]:
    """The first ``channels`` outputs (a multiple of 8) and first ``groups`` groups, still packed."""
    ks, words = groups * group_width, channels // CODES_PER_WORD
    return {"qweight": tensors["qweight"][:ks, :words], "qzeros": tensors["qzeros"][:groups, :words],
            "scales": tensors["scales"][:groups, :channels]}


def decode(tensors: dict[str, torch.Tensor], spec: QuantSpec, checkpoint_format: str | None = None) -> QuantizedWeight:
    return unpack(tensors, spec)
