"""Group-wise integer quantisation of a weight matrix, as AutoAWQ and llm-awq do it.

A weight W has shape [N, K] (PyTorch ``nn.Linear`` layout: N outputs, K inputs) and is cut
along K into groups of G consecutive inputs (G = -1 means one group per output row, G = K).
Each group g of row n gets a scale s[n, g] and an integer zero z[n, g]; the code is

    q = clamp(round(w / s) + z, 0, 2^b - 1)          and the weight it stands for is
    w_hat = (q - z) * s

Asymmetric (zero point), AutoAWQ ``pseudo_quantize_tensor``:
    s = clamp(max - min, 1e-5) / (2^b - 1)
    z = clamp(-round(min / s), 0, 2^b - 1)             (round half to even, then clamp)

Symmetric (no zero point), AutoAWQ:
    s = clamp(max |w|, 1e-5) / (2^(b-1) - 1),  signed code in [-2^(b-1), 2^(b-1) - 1].
We store the signed code shifted by 2^(b-1) with z = 2^(b-1), so every layout and every
reader uses the single formula above; that is also how GPTQ and compressed-tensors store it.

The arithmetic runs in the weight's own dtype. ``scale_dtype`` rounds the scales to the
dtype they will be stored in *before* zeros and codes are computed, so the stored tensors
dequantise to exactly the weight that was evaluated.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

SUPPORTED_BITS = range(2, 9)
MIN_RANGE = 1e-5  # AutoAWQ's clamp on (max - min) and on max|w|


class QuantError(ValueError):
    """An input that cannot be quantised with the requested settings."""


@dataclass(frozen=True)
class QuantSpec:
    bits: int = 4
    group_size: int = 128
    zero_point: bool = True

    def __post_init__(self):
        if self.bits not in SUPPORTED_BITS:
            raise QuantError(f"bits must be in 2..8, got {self.bits}")
        if self.group_size != -1 and self.group_size <= 0:
            raise QuantError(f"group size must be positive or -1, got {self.group_size}")

    @property
    def max_code(self) -> int:
        return 2**self.bits - 1

    def group_width(self, in_features: int) -> int:
        """The number of inputs per group for a layer with ``in_features`` inputs."""
        g = in_features if self.group_size == -1 else self.group_size
        if in_features % g:
            raise QuantError(f"in_features {in_features} is not divisible by group size {g}")
        return g


@dataclass
class QuantizedWeight:
    """Codes, scales and zeros of one [N, K] weight, in PyTorch linear orientation.

    q: [N, K] int32 in [0, 2^b - 1];  scales: [N, K/G] float;  zeros: [N, K/G] int32.
    """

    q: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor
    spec: QuantSpec

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.q.shape)

    @property
    def group_width(self) -> int:
        return self.q.shape[1] // self.scales.shape[1]

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """w_hat = (q - z) * s, computed in ``dtype`` (exact for float32 and wider)."""
        g = self.group_width
        s = self.scales.to(dtype).repeat_interleave(g, dim=1)
        z = self.zeros.to(dtype).repeat_interleave(g, dim=1)
        return (self.q.to(dtype) - z) * s


def _grouped(w: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    if w.dim() != 2:
        raise QuantError(f"expected a 2-D weight [N, K], got shape {tuple(w.shape)}")
    if not torch.isfinite(w).all():
        raise QuantError("weight contains NaN or inf")
    g = spec.group_width(w.shape[1])
    return w.reshape(-1, g)


def _group_scales(wg: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    if spec.zero_point:
        span = wg.amax(dim=1, keepdim=True) - wg.amin(dim=1, keepdim=True)
        return span.clamp(min=MIN_RANGE) / spec.max_code
    peak = wg.abs().amax(dim=1, keepdim=True).clamp(min=MIN_RANGE)
    return peak / (2 ** (spec.bits - 1) - 1)


def _round_to_storage(s: torch.Tensor, scale_dtype: torch.dtype | None) -> torch.Tensor:
    if scale_dtype is None:
        return s
    stored = s.to(scale_dtype)
    tiniest = torch.finfo(scale_dtype).smallest_normal * 2.0**-10  # smallest subnormal
    return torch.where(stored == 0, torch.full_like(stored, tiniest), stored).to(s.dtype)


def _group_zeros(wg: torch.Tensor, s: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    if spec.zero_point:
        return (-torch.round(wg.amin(dim=1, keepdim=True) / s)).clamp(0, spec.max_code)
    return torch.full_like(s, 2 ** (spec.bits - 1))


def quantize(w: torch.Tensor, spec: QuantSpec, scale_dtype: torch.dtype | None = None) -> QuantizedWeight:
    """Quantise W [N, K] group-wise. See the module docstring for the formulas."""
    n, k = w.shape if w.dim() == 2 else (0, 0)
    wg = _grouped(w, spec)
    s = _round_to_storage(_group_scales(wg, spec), scale_dtype)
    z = _group_zeros(wg, s, spec)
    q = torch.clamp(torch.round(wg / s) + z, 0, spec.max_code)
    n_groups = k // spec.group_width(k)
    return QuantizedWeight(
        q=q.reshape(n, k).to(torch.int32),
        scales=s.reshape(n, n_groups).to(scale_dtype or w.dtype),
        zeros=z.reshape(n, n_groups).to(torch.int32),
        spec=spec,
    )


def pseudo_quantize(w: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Quantise and dequantise in one step, in w's dtype (AutoAWQ ``pseudo_quantize_tensor``)."""
    return quantize(w, spec).dequantize(w.dtype)
