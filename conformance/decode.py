"""Turn a checked layer's stored tensors into codes, zeros and scales, in [N, ...] orientation.

``scales_zeros`` decodes the small tensors in full; ``codes_sample`` decodes the codes of a
bounded slice of output channels only (what the plausibility statistics need); ``full``
decodes everything (for the reference comparison). The layout module does the work
(awq_ref.formats); zeros always come back as our unsigned z, so w_hat = (q - z) * s in every
layout: compressed-tensors' +2^(b-1) offsets cancel, GPTQ v1's stored z - 1 gets its 1 back.
The code width is the layer's (compressed-tensors packs 4 or 8 bits per code).

Act-order (GPTQ ``g_idx``, compressed-tensors ``weight_g_idx``): the codes stay in the original
column order and column k uses group g[k], so ``weight`` dequantises (q[:, k] - z[:, g[k]]) *
s[:, g[k]]; ``codes_sample`` reorders the columns group by group (a stable sort by g), so the
plausibility statistics see each group's codes beside its own zero.
"""
from __future__ import annotations

import torch

from awq_harness.awq_ref.primitives.quant import QuantizedWeight, QuantSpec
from awq_harness.conformance.structure import Layer

SAMPLE_CHANNELS = 128
SAMPLE_GROUPS = 16


def _checkpoint_format(v1: bool) -> str | None:
    """The declared zero convention: GPTQ v1 (the default) or v2; the other layouts have one."""
    return None if v1 else "gptq_v2"


def scales_zeros(layer: Layer, t: dict[str, torch.Tensor], v1: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return layer.layout.scales_zeros(t, layer.dims.k // layer.group_width, _checkpoint_format(v1))


def _spec(layer: Layer) -> QuantSpec:
    return QuantSpec(layer.bits, layer.group_width, True)


G_IDX_SUFFIXES = ("weight_g_idx", "g_idx")


def group_index(layer: Layer, t: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """The layer's column groups when they are not the contiguous k // G (act-order), else None."""
    g_idx = next((t[s] for s in G_IDX_SUFFIXES if s in t), None)
    if g_idx is None:
        return None
    contiguous = torch.arange(layer.dims.k) // layer.group_width
    return None if torch.equal(g_idx.to(torch.int64), contiguous) else g_idx.to(torch.int64)


def dequantize(qw: QuantizedWeight, g_idx: torch.Tensor | None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(q - z) * s with column k in group ``g_idx[k]`` (None: contiguous groups)."""
    if g_idx is None:
        return qw.dequantize(dtype)
    return (qw.q.to(dtype) - qw.zeros.to(dtype)[:, g_idx]) * qw.scales.to(dtype)[:, g_idx]


def sample_slices(layer: Layer, t: dict[str, torch.Tensor],
                  most_groups: int = SAMPLE_GROUPS) -> dict[str, torch.Tensor]:
    """Views of at most SAMPLE_CHANNELS channels x ``most_groups`` groups, still packed (a leading
    block of each stored tensor, so a remote reader knows which bytes to fetch)."""
    c = min(layer.dims.n, SAMPLE_CHANNELS) // 8 * 8 or layer.dims.n
    groups = layer.dims.k // layer.group_width
    g = min(groups, most_groups)
    if (g * layer.group_width) % 8:
        g = groups
    return layer.layout.sample(t, c, g, layer.group_width)


def codes_sample(layer: Layer, t: dict[str, torch.Tensor], v1: bool,
                 most_groups: int = SAMPLE_GROUPS) -> QuantizedWeight:
    """Codes of the sampled slices: enough for the plausibility statistics, and a bounded cost
    per layer whatever its size (act-order: the whole layer decoded, then its columns in group order)."""
    g_idx = group_index(layer, t)
    if g_idx is None:
        return layer.layout.decode(sample_slices(layer, t, most_groups), _spec(layer), _checkpoint_format(v1))
    qw = full(layer, t, v1)
    return QuantizedWeight(qw.q[:, torch.sort(g_idx, stable=True).indices].contiguous(), qw.scales, qw.zeros, qw.spec)


def full(layer: Layer, t: dict[str, torch.Tensor], v1: bool) -> QuantizedWeight:
    """Codes, scales and zeros; the column groups are ``group_index`` (see ``weight``)."""
    return layer.layout.decode(t, _spec(layer), _checkpoint_format(v1))


def weight(layer: Layer, t: dict[str, torch.Tensor], v1: bool, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The dequantised [N, K] weight, act-order's column groups applied."""
    return dequantize(full(layer, t, v1), group_index(layer, t), dtype)
