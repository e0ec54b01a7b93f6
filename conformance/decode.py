"""Turn a checked layer's stored tensors into codes, zeros and scales, in [N, ...] orientation.

``scales_zeros`` decodes the small tensors in full; ``codes_sample`` decodes the codes of a
bounded slice of output channels only (what the plausibility statistics need); ``full``
decodes everything (for the reference comparison). The layout module does the work
(awq_ref.formats); zeros always come back as our unsigned z, so w_hat = (q - z) * s in every
layout: compressed-tensors' +8 offsets cancel, GPTQ v1's stored z - 1 gets its 1 back.
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
    return QuantSpec(4, layer.group_width, True)


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
    per layer whatever its size."""
    return layer.layout.decode(sample_slices(layer, t, most_groups), _spec(layer), _checkpoint_format(v1))


def full(layer: Layer, t: dict[str, torch.Tensor], v1: bool) -> QuantizedWeight:
    return layer.layout.decode(t, _spec(layer), _checkpoint_format(v1))
