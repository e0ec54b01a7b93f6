"""compressed-tensors ``pack-quantized`` layout (what llm-compressor writes for AWQ W4A16).

Written by compressed-tensors ``PackedQuantizationCompressor``; read by vLLM
(``CompressedTensorsWNA16``) and transformers (decompressed to dense on load).

    tensor              shape               dtype   content
    weight_packed       [N, ceil(K / 8)]    int32   codes + 8 packed along K (inputs), natural order
    weight_scale        [N, K / G]          float   scales (model dtype: bf16 or fp16)
    weight_zero_point   [ceil(N / 8), K/G]  int32   zero + 8 packed along N (dim 0), natural order;
                                                    asymmetric only (absent when symmetric)
    weight_shape        [2]                 int64   the true [N, K]

compressed-tensors stores signed codes q_s in [-8, 7] and signed zeros zp; the packed nibbles
are q_s + 8 and zp + 8, which are exactly our unsigned code q and zero z, so
w_hat = (q_s - zp) * s = (q - z) * s. A K that is not a multiple of 8 is zero-padded.
Symmetric checkpoints have no zero tensor; their zero is 8 (signed zero 0).
"""
from __future__ import annotations

import torch

from awq_ref.formats.nibbles import pack_last, unpack_last
from awq_ref.primitives.quant import QuantizedWeight, QuantSpec

TENSOR_NAMES = ("weight_packed", "weight_scale", "weight_zero_point", "weight_shape")
SYMMETRIC_ZERO = 8


def _ceil8(x: int) -> int:
    return -(-x // 8)


def _pad_last(t: torch.Tensor, multiple: int = 8) -> torch.Tensor:
    extra = (-t.shape[-1]) % multiple
    if not extra:
        return t
    return torch.cat([t, torch.zeros(*t.shape[:-1], extra, dtype=t.dtype)], dim=-1)


def shapes(in_features: int, out_features: int, group_width: int) -> dict[str, tuple[int, ...]]:
    groups = in_features // group_width
    return {
        "weight_packed": (out_features, _ceil8(in_features)),
        "weight_scale": (out_features, groups),
        "weight_zero_point": (_ceil8(out_features), groups),
        "weight_shape": (2,),
    }


def pack(qw: QuantizedWeight, scale_dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    if qw.spec.bits != 4:
        raise ValueError(f"pack-quantized is written here for 4-bit codes only, got {qw.spec.bits} bits")
    n, k = qw.shape
    out = {
        "weight_packed": pack_last(_pad_last(qw.q), 4),
        "weight_scale": qw.scales.to(scale_dtype).contiguous(),
        "weight_shape": torch.tensor([n, k], dtype=torch.int64),
    }
    if qw.spec.zero_point:
        out["weight_zero_point"] = pack_last(_pad_last(qw.zeros.t()), 4).t().contiguous()
    return out


def unpack(tensors: dict[str, torch.Tensor], spec: QuantSpec) -> QuantizedWeight:
    n, k = (int(v) for v in tensors["weight_shape"].tolist())
    q = unpack_last(tensors["weight_packed"], 4)[:n, :k].contiguous()
    scales = tensors["weight_scale"].contiguous()
    if "weight_zero_point" in tensors:
        zeros = unpack_last(tensors["weight_zero_point"].t().contiguous(), 4)[:, :n].t().contiguous()
    else:
        zeros = torch.full(scales.shape, SYMMETRIC_ZERO, dtype=torch.int32)
    return QuantizedWeight(q=q, scales=scales, zeros=zeros, spec=spec)
