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
Symmetric 4-bit has z = 8, stored 7 in v1 (every qzeros word 0x77777777). 4-bit only;
K and N multiples of 8.

``quantization_config``: {quant_method: "gptq", bits, group_size, desc_act, sym, static_groups,
checkpoint_format}; the search settings (damp_percent, true_sequential) are not about the
layout; writers add them.
"""
from __future__ import annotations

import torch

from awq_harness.awq_ref.formats.dims import CODES_PER_WORD, FLOAT_SCALES, Dims, Shapes, two_d
from awq_harness.awq_ref.formats.nibbles import pack_last, unpack_last
from awq_harness.awq_ref.primitives.quant import QuantizedWeight, QuantSpec

NAME = "gptq"
TENSOR_NAMES = ("qweight", "qzeros", "scales", "g_idx")
REQUIRED = ("qweight", "qzeros", "scales")
RECOMMENDED = ("g_idx",)  # optional on disk, but some loaders require it
PACKED, SCALES, ZEROS = "qweight", "scales", "qzeros"
PACK_AXIS = "in"  # codes packed along K; zeros along N
ASYMMETRIC_ONLY: tuple[str, ...] = ()
VALUES: tuple[str, ...] = ()
DTYPES = {"qweight": {"I32"}, "qzeros": {"I32"}, "scales": FLOAT_SCALES, "g_idx": {"I32"}}
CHECKPOINT_FORMATS = {"gptq": 1, "gptq_v2": 0}  # checkpoint_format -> offset subtracted from z on disk


def zero_offset(checkpoint_format: str | None = None) -> int:
    """What the file subtracted from each zero (None: the default v1, ``"gptq"``)."""
    fmt = checkpoint_format or "gptq"
    try:
        return CHECKPOINT_FORMATS[fmt]
    except KeyError:
        known = sorted(CHECKPOINT_FORMATS)
        raise ValueError(f"unknown GPTQ checkpoint_format {fmt!r}; known: {known}") from None



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


def optional_shapes(in_features: int, out_features: int) -> dict[str, tuple[int, ...]]:
    return {"bias": (out_features,)}


def dims(shapes: Shapes, values: dict | None = None) -> Dims | None:
    """N from qweight, K from g_idx (else qweight's words x 8), groups from scales."""
    qw, sc, gi = shapes.get("qweight"), shapes.get("scales"), shapes.get("g_idx")
    if not two_d(qw):
        return None
    k = gi[0] if gi and len(gi) == 1 else qw[0] * CODES_PER_WORD
    return Dims(n=qw[1], k=k, groups=sc[0] if two_d(sc) else None, pack=k / qw[0])


def alignment(n: int, k: int) -> list[tuple[str, str]]:
    """(tensor, reason) for each dimension this layout cannot pack."""
    out = []
    if k % CODES_PER_WORD:
        out.append(("qweight", f"in_features {k} is not divisible by the pack factor 8"))
    if n % CODES_PER_WORD:
        out.append(("qzeros", f"out_features {n} is not divisible by 8 (qzeros packing)"))
    return out


def quantization_config(spec: QuantSpec, checkpoint_format: str = "gptq", desc_act: bool = False,
                        static_groups: bool = False) -> dict:
    zero_offset(checkpoint_format)  # a known variant, or ValueError
    return {"quant_method": "gptq", "bits": spec.bits, "group_size": spec.group_size, "desc_act": desc_act,
            "sym": not spec.zero_point, "static_groups": static_groups, "checkpoint_format": checkpoint_format}


def pack(qw: QuantizedWeight, scale_dtype: torch.dtype = torch.float16,
         checkpoint_format: str = "gptq") -> dict[str, torch.Tensor]:
    offset = zero_offset(checkpoint_format)
    _check(qw, offset)
    k = qw.shape[1]
    return {
        "qweight": pack_last(qw.q, 4).t().contiguous(),
        "qzeros": pack_last((qw.zeros - offset).t(), 4),
        "scales": qw.scales.t().to(scale_dtype).contiguous(),
        "g_idx": (torch.arange(k, dtype=torch.int32, device=qw.q.device) // qw.group_width).to(torch.int32),
    }


def unpack(tensors: dict[str, torch.Tensor], spec: QuantSpec, checkpoint_format: str = "gptq") -> QuantizedWeight:
    offset = zero_offset(checkpoint_format)
    q = unpack_last(tensors["qweight"].t().contiguous(), 4)
    zeros = unpack_last(tensors["qzeros"], 4).t().contiguous() + offset
    scales = tensors["scales"].t().contiguous()
    return QuantizedWeight(q=q, scales=scales, zeros=zeros, spec=spec)


def scales_zeros(tensors: dict[str, torch.Tensor], groups: int,
                 checkpoint_format: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scales and zeros as [N, groups], the v1 offset added back."""
    return tensors["scales"].t(), unpack_last(tensors["qzeros"], 4).t() + zero_offset(checkpoint_format)


def sample(tensors: dict[str, torch.Tensor], channels: int, groups: int, group_width: int) -> dict[str, torch.Tensor]:
    """The first ``channels`` outputs (a multiple of 8) and first ``groups`` groups, still packed."""
    ks, words = groups * group_width, channels // CODES_PER_WORD
    return {"qweight": tensors["qweight"][: ks // CODES_PER_WORD, :channels],
            "qzeros": tensors["qzeros"][:groups, :words], "scales": tensors["scales"][:groups, :channels]}


def decode(tensors: dict[str, torch.Tensor], spec: QuantSpec, checkpoint_format: str | None = None) -> QuantizedWeight:
    return unpack(tensors, spec, checkpoint_format or "gptq")
