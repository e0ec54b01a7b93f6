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
Symmetric checkpoints have no zero tensor; their zero is 8 (signed zero 0). Files written
by older compressed-tensors releases store the zero point unpacked, int8 [N, K/G] signed; ``decode``
and ``scales_zeros`` read both. An optional ``weight_g_idx`` [K] (act-order) may be present.

``quantization_config`` (what llm-compressor writes):

    {quant_method: "compressed-tensors", format: "pack-quantized", quantization_status: "compressed",
     config_groups: {group_0: {targets: ["Linear"], format: "pack-quantized",
                               weights: {num_bits: 4, type: "int", symmetric, strategy: "group"|"channel",
                                         group_size (None per channel), ...}}}}

``ignore`` (which modules stay float) and ``version`` (the writer's release) are not about the
layout; writers add them.

**8 bits.** The same compressor packs any ``num_bits`` dividing 32: 32 / b codes per int32 word,
stored value q_s + 2^(b-1) (so again our unsigned code), zeros packed the same way along N. For
b = 8: weight_packed [N, ceil(K / 4)], weight_zero_point [ceil(N / 4), K/G], symmetric zero 128.
A checkpoint with 4-bit and 8-bit linears declares one config group per scheme, each with the
``targets`` it applies to (``mixed_quantization_config``); vLLM matches each module to the group
whose targets name it (``find_matched_target`` in its compressed-tensors utils): a target is a
module name, a ``re:`` regex (``re.match``) or a class name ("Linear"); ``ignore`` entries the same
(``group_of``). A group's ``actorder: "group"`` (act-order) means each of its linears stores
``weight_g_idx`` [K] int32, the group of each input column in stored order: the codes stay in
the original column order and w_hat[:, k] = (q[:, k] - z[:, g[k]]) * s[:, g[k]].
"""
from __future__ import annotations

import re

import torch

from awq_harness.awq_ref.formats.dims import FLOAT_SCALES, Dims, Shapes, two_d
from awq_harness.awq_ref.formats.nibbles import pack_last, unpack_last
from awq_harness.awq_ref.primitives.quant import QuantizedWeight, QuantSpec

NAME = "compressed-tensors"
TENSOR_NAMES = ("weight_packed", "weight_scale", "weight_zero_point", "weight_shape")
REQUIRED = ("weight_packed", "weight_scale", "weight_shape")
ASYMMETRIC_ONLY = ("weight_zero_point",)  # present exactly when zero points are stored
PACKED, SCALES, ZEROS = "weight_packed", "weight_scale", "weight_zero_point"
VALUES = ("weight_shape",)  # small tensors whose values ``dims`` reads
PACK_AXIS = "in"  # codes packed along K; zero points along N
RECOMMENDED: tuple[str, ...] = ()
DTYPES = {"weight_packed": {"I32"}, "weight_scale": FLOAT_SCALES | {"F32"}, "weight_zero_point": {"I32", "I8"},
          "weight_shape": {"I64", "I32"}, "weight_g_idx": {"I32"}}
SYMMETRIC_ZERO = 8
SIGNED_OFFSET = 8  # stored signed value + 8 = our unsigned code / zero
PACKED_BITS = (4, 8)  # the code widths pack/unpack write and read


def per_word(bits: int = 4) -> int:
    """Codes in one int32 word."""
    return 32 // bits


def symmetric_zero(bits: int = 4) -> int:
    """The unsigned zero of a symmetric checkpoint (signed zero 0): 2^(bits - 1)."""
    return 2 ** (bits - 1)


def _ceil_div(x: int, d: int) -> int:
    return -(-x // d)


def _pad_last(t: torch.Tensor, multiple: int = 8) -> torch.Tensor:
    extra = (-t.shape[-1]) % multiple
    if not extra:
        return t
    return torch.cat([t, torch.zeros(*t.shape[:-1], extra, dtype=t.dtype)], dim=-1)


def shapes(in_features: int, out_features: int, group_width: int, bits: int = 4) -> dict[str, tuple[int, ...]]:
    groups, words = in_features // group_width, per_word(bits)
    return {
        "weight_packed": (out_features, _ceil_div(in_features, words)),
        "weight_scale": (out_features, groups),
        "weight_zero_point": (_ceil_div(out_features, words), groups),
        "weight_shape": (2,),
    }


def optional_shapes(in_features: int, out_features: int) -> dict[str, tuple[int, ...]]:
    return {"bias": (out_features,), "weight_g_idx": (in_features,)}


def dims(shapes: Shapes, values: dict | None = None) -> Dims | None:
    """N and K from the ``weight_shape`` value (else weight_packed, assuming no padding), groups from scales."""
    wp, sc = shapes.get("weight_packed"), shapes.get("weight_scale")
    stated = (values or {}).get("weight_shape")
    if not two_d(wp):
        return None
    n, k = stated if stated is not None else (wp[0], wp[1] * 8)
    return Dims(n=n, k=k, groups=sc[1] if two_d(sc) else None, pack=k / wp[1] if wp[1] else 0)


def alignment(n: int, k: int) -> list[tuple[str, str]]:
    """Nothing to align: K and N are zero-padded to a multiple of 8."""
    return []


def _weights_scheme(spec: QuantSpec, actorder: str | None = None) -> dict:
    per_channel = spec.group_size == -1
    return {"num_bits": spec.bits, "type": "int", "symmetric": not spec.zero_point,
            "strategy": "channel" if per_channel else "group",
            "group_size": None if per_channel else spec.group_size,
            "dynamic": False, "actorder": actorder, "block_structure": None, "observer": "minmax",
            "observer_kwargs": {}}


def _config_group(spec: QuantSpec, targets: list[str], actorder: str | None = None) -> dict:
    return {"targets": list(targets), "format": "pack-quantized", "weights": _weights_scheme(spec, actorder),
            "input_activations": None, "output_activations": None}


def mixed_quantization_config(schemes: list[tuple], ignore: list[str] | None = None) -> dict:
    """One config group per (spec, targets) or (spec, targets, actorder), named group_0, group_1, ...
    in the order given; ``ignore``: the linears left float (omitted when None)."""
    for spec, *_ in schemes:
        if spec.bits not in PACKED_BITS:
            raise ValueError(f"pack-quantized is written here for {PACKED_BITS} bits, got {spec.bits}")
    out = {"quant_method": NAME, "format": "pack-quantized", "quantization_status": "compressed",
           "config_groups": {f"group_{i}": _config_group(*scheme) for i, scheme in enumerate(schemes)}}
    if ignore is not None:
        out["ignore"] = list(ignore)
    return out


def target_matches(target: str, name: str, class_name: str = "Linear") -> bool:
    """compressed-tensors' and vLLM's matching: a ``re:`` regex (re.match), the exact name, or the class."""
    if target.startswith("re:"):
        try:
            return re.match(target[3:], name) is not None
        except re.error:
            return False
    return target in (name, class_name)


def groups_of(name: str, config_groups: dict, ignore: list[str] = ()) -> list[str]:
    """The config groups whose targets match module ``name`` (none when ``ignore`` matches it)."""
    if any(target_matches(entry, name, "") for entry in ignore):
        return []
    return [key for key, group in config_groups.items()
            if isinstance(group, dict) and any(target_matches(str(t), name) for t in group.get("targets") or [])]


def quantization_config(spec: QuantSpec) -> dict:
    return mixed_quantization_config([(spec, ["Linear"])])


def pack(qw: QuantizedWeight, scale_dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    bits = qw.spec.bits
    if bits not in PACKED_BITS:
        raise ValueError(f"pack-quantized is written here for {PACKED_BITS}-bit codes, got {bits} bits")
    n, k = qw.shape
    out = {
        "weight_packed": pack_last(_pad_last(qw.q, per_word(bits)), bits, _order(bits)),
        "weight_scale": qw.scales.to(scale_dtype).contiguous(),
        "weight_shape": torch.tensor([n, k], dtype=torch.int64),
    }
    if qw.spec.zero_point:
        zeros = pack_last(_pad_last(qw.zeros.t(), per_word(bits)), bits, _order(bits))
        out["weight_zero_point"] = zeros.t().contiguous()
    return out


def _order(bits: int) -> tuple[int, ...]:
    return tuple(range(per_word(bits)))  # natural order: code i in bits [b*i, b*(i+1))


def unpack(tensors: dict[str, torch.Tensor], spec: QuantSpec) -> QuantizedWeight:
    bits = spec.bits
    n, k = (int(v) for v in tensors["weight_shape"].tolist())
    q = unpack_last(tensors["weight_packed"], bits, _order(bits))[:n, :k].contiguous()
    scales = tensors["weight_scale"].contiguous()
    if "weight_zero_point" in tensors:
        zp = tensors["weight_zero_point"].t().contiguous()
        zeros = unpack_last(zp, bits, _order(bits))[:, :n].t().contiguous()
    else:
        zeros = torch.full(scales.shape, symmetric_zero(bits), dtype=torch.int32)
    return QuantizedWeight(q=q, scales=scales, zeros=zeros, spec=spec)


def _int8_zeros(zp: torch.Tensor) -> bool:
    return zp.dtype == torch.int8


def bits_of(tensors: dict[str, torch.Tensor]) -> int:
    """The code width a layer's tensors pack: the b of PACKED_BITS with ceil(K / (32 / b)) words
    per row (4 when ``weight_shape`` or ``weight_packed`` is not there to say)."""
    shape, packed = tensors.get("weight_shape"), tensors.get("weight_packed")
    if shape is None or packed is None or packed.dim() != 2:
        return 4
    k = int(shape[1])
    return next((b for b in PACKED_BITS if _ceil_div(k, per_word(b)) == packed.shape[1]), 4)


def scales_zeros(tensors: dict[str, torch.Tensor], groups: int,
                 checkpoint_format: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scales and zeros as [N, groups] (one variant: ``checkpoint_format`` is ignored)."""
    scales, zp, bits = tensors["weight_scale"], tensors.get("weight_zero_point"), bits_of(tensors)
    n = scales.shape[0]
    if zp is None:
        return scales, torch.full((n, groups), symmetric_zero(bits), dtype=torch.int32)
    if _int8_zeros(zp):
        return scales, zp.to(torch.int32) + symmetric_zero(bits)
    return scales, unpack_last(zp.t().contiguous(), bits, _order(bits))[:, :n].t().contiguous()


def sample(tensors: dict[str, torch.Tensor], channels: int, groups: int, group_width: int) -> dict[str, torch.Tensor]:
    """The first ``channels`` outputs and first ``groups`` groups, still packed."""
    ks, words = groups * group_width, per_word(bits_of(tensors))
    out = {"weight_packed": tensors["weight_packed"][:channels, : _ceil_div(ks, words)],
           "weight_scale": tensors["weight_scale"][:channels, :groups], "weight_shape": torch.tensor([channels, ks])}
    zp = tensors.get("weight_zero_point")
    if zp is not None:
        rows = channels if _int8_zeros(zp) else _ceil_div(channels, words)
        out["weight_zero_point"] = zp[:rows, :groups]
    return out


def decode(tensors: dict[str, torch.Tensor], spec: QuantSpec, checkpoint_format: str | None = None) -> QuantizedWeight:
    """``unpack``, also for the older unpacked int8 zero points."""
    zp = tensors.get("weight_zero_point")
    if zp is None or not _int8_zeros(zp):
        return unpack(tensors, spec)
    qw = unpack({k: v for k, v in tensors.items() if k != "weight_zero_point"}, spec)
    return QuantizedWeight(qw.q, qw.scales, zp.to(torch.int32) + symmetric_zero(spec.bits), spec)
