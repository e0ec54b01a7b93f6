"""Turn a checked layer's stored tensors into codes, zeros and scales, in [N, ...] orientation.

``scales_zeros`` decodes the small tensors in full; ``codes_sample`` decodes the codes of a
bounded slice of output channels only (what the plausibility statistics need); ``full``
decodes everything (for the reference comparison). Zeros are always our unsigned z, so
w_hat = (q - z) * s in every layout: compressed-tensors' +8 offsets cancel, GPTQ v1's
stored z - 1 gets its 1 back.
"""
from __future__ import annotations

import torch

from awq_ref.formats import awq_gemm, compressed_tensors, gptq
from awq_ref.formats.nibbles import unpack_last
from awq_ref.primitives.quant import QuantizedWeight, QuantSpec
from conformance.layouts import CT, GEMM, GEMV, GPTQ
from conformance.structure import Layer

SAMPLE_CHANNELS = 128
SAMPLE_GROUPS = 16


def _gptq_format(v1: bool) -> str:
    return "gptq" if v1 else "gptq_v2"


def _ct_zeros(t: dict, n: int, groups: int) -> torch.Tensor:
    zp = t.get("weight_zero_point")
    if zp is None:
        return torch.full((n, groups), compressed_tensors.SYMMETRIC_ZERO, dtype=torch.int32)
    if zp.dtype == torch.int8:
        return zp.to(torch.int32) + 8
    return unpack_last(zp.t().contiguous(), 4)[:, :n].t().contiguous()


def scales_zeros(layer: Layer, t: dict[str, torch.Tensor], v1: bool) -> tuple[torch.Tensor, torch.Tensor]:
    lay, n, groups = layer.layout, layer.dims.n, layer.dims.k // layer.group_width
    if lay is GEMM:
        return t["scales"].t(), unpack_last(t["qzeros"], 4, awq_gemm.ORDER).t()
    if lay is GEMV:
        return t["scales"][:, :groups], unpack_last(t["qzeros"], 4)[:, :groups]
    if lay is CT:
        return t["weight_scale"], _ct_zeros(t, n, groups)
    offset = gptq.FORMATS[_gptq_format(v1)]
    return t["scales"].t(), unpack_last(t["qzeros"], 4).t() + offset


def _slice(layer: Layer, t: dict[str, torch.Tensor], c: int, g: int) -> dict[str, torch.Tensor]:
    """The first ``c`` output channels and first ``g`` groups of every tensor of the layer."""
    lay, ks = layer.layout, g * layer.group_width
    if lay is GEMM:
        return {"qweight": t["qweight"][:ks, : c // 8], "qzeros": t["qzeros"][:g, : c // 8],
                "scales": t["scales"][:g, :c]}
    if lay is GEMV:
        return {"qweight": t["qweight"][:c, : ks // 8], "qzeros": t["qzeros"][:c], "scales": t["scales"][:c]}
    if lay is CT:
        out = {"weight_packed": t["weight_packed"][:c, : -(-ks // 8)], "weight_scale": t["weight_scale"][:c, :g],
               "weight_shape": torch.tensor([c, ks])}
        zp = t.get("weight_zero_point")
        if zp is not None:
            out["weight_zero_point"] = zp[:c, :g] if zp.dtype == torch.int8 else zp[: -(-c // 8), :g]
        return out
    return {"qweight": t["qweight"][: ks // 8, :c], "qzeros": t["qzeros"][:g, : c // 8], "scales": t["scales"][:g, :c]}


def _unpack(layer: Layer, t: dict[str, torch.Tensor], spec: QuantSpec, v1: bool) -> QuantizedWeight:
    lay = layer.layout
    if lay is GPTQ:
        return gptq.unpack(t, spec, _gptq_format(v1))
    if lay is CT and "weight_zero_point" in t and t["weight_zero_point"].dtype == torch.int8:
        qw = compressed_tensors.unpack({k: v for k, v in t.items() if k != "weight_zero_point"}, spec)
        return QuantizedWeight(qw.q, qw.scales, t["weight_zero_point"].to(torch.int32) + 8, spec)
    return lay.module.unpack(t, spec)


def _spec(layer: Layer) -> QuantSpec:
    return QuantSpec(4, layer.group_width, True)


def codes_sample(layer: Layer, t: dict[str, torch.Tensor], v1: bool) -> QuantizedWeight:
    """Codes of at most SAMPLE_CHANNELS channels x SAMPLE_GROUPS groups: enough for the
    plausibility statistics, and a bounded cost per layer whatever its size."""
    c = min(layer.dims.n, SAMPLE_CHANNELS) // 8 * 8 or layer.dims.n
    groups = layer.dims.k // layer.group_width
    g = min(groups, SAMPLE_GROUPS)
    if (g * layer.group_width) % 8:
        g = groups
    return _unpack(layer, _slice(layer, t, c, g), _spec(layer), v1)


def full(layer: Layer, t: dict[str, torch.Tensor], v1: bool) -> QuantizedWeight:
    return _unpack(layer, t, _spec(layer), v1)
