"""The oracle for the kernel tests: awq_ref (quantize / dequantize / pack), never a kernel.

Error metric for GEMM-like kernels (componentwise forward error of a dot product):

    err = max_ij |y_ij - ref_ij| / (|x| @ |W_hat|^T + |bias|)_ij,   ref computed in float64

which is scale-free and bounded by the sum of the unit roundoffs the kernel incurs, so each
tolerance below is derived, not tuned. Rounding to a float type is |fl(a) - a| <= u|a| + eta,
where eta (half the smallest subnormal) is what gradual underflow adds once the result is
below the normal range: a tiny fp16 output (|y| < 6.1e-5) carries an absolute error of up to
2^-25 that no relative bound covers. The output rounding and the bias add are the kernels'
only roundings at the output's scale, so 2 * eta of the output dtype is taken off |y - ref|
before dividing (products and sums are fp32, and |W_hat| >= 1e-3 stays normal in fp16).
u16 = 2^-11 (fp16), ub16 = 2^-8 (bf16),
u32 = 2^-24 (fp32); K <= KMAX_FOR_BOUNDS = 4096 (the largest K the GPU tests use; the CPU
tests use K <= 256, so they pass with a wide margin and a real bug still misses by orders
of magnitude: see test_mutations.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from awq_harness.awq_ref.formats import awq_gemm as gemm_layout
from awq_harness.awq_ref.primitives.quant import QuantizedWeight, QuantSpec

U16, UB16, U32 = 2.0**-11, 2.0**-8, 2.0**-24
UNDERFLOW = {torch.float16: 2.0**-25, torch.bfloat16: 2.0**-134, torch.float32: 2.0**-150}  # eta per dtype
OUTPUT_ROUNDINGS = 2  # output rounding and bias add
KMAX_FOR_BOUNDS = 4096
ACCUMULATION = KMAX_FOR_BOUNDS * U32  # fp32 sum of K products

# (kernel, activation dtype) -> (bound on err, reason). The ONE table of kernel tolerances.
TOLERANCES: dict[tuple[str, torch.dtype], tuple[float, str]] = {
    ("dequantize", torch.float16): (0.0, "(q-z)*s is exact in fp32, rounded once like awq_ref: bit-exact"),
    ("dequantize", torch.float32): (0.0, "(q-z)*s is exact in fp32: bit-exact"),
    ("gemm", torch.float16): (2 * U16 + ACCUMULATION + U16,
                              "W_hat rounded to fp16 for tl.dot (u16) + fp32 sum + fp16 output (u16) + bias add (u16)"),
    ("gemm", torch.float32): (ACCUMULATION + 2 * U32, "all fp32 (ieee dot): fp32 sum + output + bias add"),
    ("gemm", torch.bfloat16): (ACCUMULATION + 3 * UB16, "GPU: W_hat rounded to bf16 for tl.dot (ub16), fp32 sum, "
                               "bf16 output + bias add (ub16 each); interpreter: fp32 dot on upcast x"),
    ("gemv", torch.float16): (ACCUMULATION + 2 * U16, "fp32 FMA on exact W_hat; fp16 output + bias add"),
    ("gemv", torch.float32): (ACCUMULATION + 2 * U32, "fp32 FMA; fp32 output + bias add"),
    ("gemv", torch.bfloat16): (ACCUMULATION + 2 * UB16, "fp32 FMA on upcast x; bf16 output + bias add"),
    ("gemv_layout", torch.float16): (ACCUMULATION + 2 * U16, "fp32 FMA on exact W_hat; fp16 output + bias add"),
    ("gemv_layout", torch.float32): (ACCUMULATION + 2 * U32, "fp32 FMA; fp32 output + bias add"),
    ("gemv_layout", torch.bfloat16): (ACCUMULATION + 2 * UB16, "fp32 FMA on upcast x; bf16 output + bias add"),
    ("dequant+matmul", torch.float16): (2 * U16 + ACCUMULATION + U16,
                                        "exact fp16 W_hat; torch fp16 matmul (fp32 accumulate) + output + bias"),
    ("dequant+matmul", torch.float32): (ACCUMULATION + 2 * U32, "fp32 matmul (TF32 off) + bias add"),
    ("dequant+matmul", torch.bfloat16): (ACCUMULATION + 2 * UB16, "fp32 matmul on upcast x; bf16 output + bias"),
    # Whole models, metric max|logits - ref| / max|ref| (kernels vs awq_ref's AwqLinear forward):
    ("logits", torch.float32): (1e-5, "fp32 model: each linear differs by <= 3e-4 of |x||W| only in "
                                      "summation order; a 1-layer tiny model keeps that far below 1e-5"),
    ("logits", torch.float16): (3e-2, "fp16 model: both paths round activations to fp16 after every op "
                                      "(u16 = 4.9e-4), and 30 layers compound the difference"),
}


def tolerance(kernel: str, dtype: torch.dtype) -> float:
    return TOLERANCES[(kernel, dtype)][0]


@dataclass(frozen=True)
class Layer:
    """A random quantised layer: k inputs, n outputs, AWQ group size (-1 = per channel)."""

    k: int
    n: int
    group_size: int
    zero_point: bool
    seed: int
    scale_dtype: torch.dtype = torch.float16


def layer_shape(layer: Layer):
    """The kernels' view of a layer (group size K for per channel)."""
    from awq_harness.kernels.checks import LayerShape
    return LayerShape(layer.k, layer.n, layer.k if layer.group_size == -1 else layer.group_size)


def random_weight(layer: Layer) -> QuantizedWeight:
    """Uniform random codes, zeros and nonzero scales (every code 0..15 is reachable)."""
    gen = torch.Generator().manual_seed(layer.seed)
    spec = QuantSpec(bits=4, group_size=layer.group_size, zero_point=layer.zero_point)
    groups = layer.k // spec.group_width(layer.k)
    q = torch.randint(0, 16, (layer.n, layer.k), generator=gen, dtype=torch.int32)
    if layer.zero_point:
        zeros = torch.randint(0, 16, (layer.n, groups), generator=gen, dtype=torch.int32)
    else:
        zeros = torch.full((layer.n, groups), 8, dtype=torch.int32)  # awq_ref's symmetric storage
    magnitude = torch.rand(layer.n, groups, generator=gen) * 0.05 + 1e-3
    scales = magnitude.to(layer.scale_dtype)
    return QuantizedWeight(q=q, scales=scales, zeros=zeros, spec=spec)


def packed(qw: QuantizedWeight, scale_dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    return gemm_layout.pack(qw, scale_dtype=scale_dtype or qw.scales.dtype)


def random_activations(m: int, k: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed ^ 0x5EED)
    x = torch.randn(m, k, generator=gen)
    return torch.where(x == 0, torch.ones_like(x), x).to(dtype)  # never an exact zero


def reference_dequantize(qw: QuantizedWeight, dtype: torch.dtype) -> torch.Tensor:
    """W_hat [K, N] as awq_ref computes it, rounded once to ``dtype``."""
    return qw.dequantize(torch.float32).t().to(dtype)


def relative_error(y: torch.Tensor, x: torch.Tensor, qw: QuantizedWeight,
                   bias: torch.Tensor | None = None) -> float:
    w = qw.dequantize(torch.float64)  # [N, K], exact
    xd = x.to(torch.float64)
    ref, magnitude = xd @ w.t(), xd.abs() @ w.abs().t()
    if bias is not None:
        ref, magnitude = ref + bias.to(torch.float64), magnitude + bias.to(torch.float64).abs()
    diff = ((y.to(torch.float64) - ref).abs() - OUTPUT_ROUNDINGS * UNDERFLOW[y.dtype]).clamp_min(0)
    # |x||W| = 0 means every product is exactly 0: then the output must be exactly 0 too.
    exact_zero = torch.where(diff == 0, 0.0, float("inf"))  # NaN stays NaN: fails "err <= tol"
    return torch.where(magnitude > 0, diff / magnitude.clamp_min(1e-300), exact_zero).max().item()


def assert_matches_reference(y: torch.Tensor, x: torch.Tensor, qw: QuantizedWeight, kernel: str,
                             bias: torch.Tensor | None = None) -> None:
    """The GEMM/GEMV property: right shape and dtype, every element written, error in bound."""
    assert y.shape == (x.shape[0], qw.shape[0]), f"shape {tuple(y.shape)}"
    assert y.dtype == x.dtype, f"dtype {y.dtype} != {x.dtype}"
    assert not torch.isnan(y).any(), "unwritten (NaN-poisoned) or NaN output elements"
    err, tol = relative_error(y, x, qw, bias), tolerance(kernel, x.dtype)
    assert err <= tol, f"{kernel}: relative error {err:.3g} > bound {tol:.3g}"


def assert_dequant_exact(w: torch.Tensor, qw: QuantizedWeight, dtype: torch.dtype) -> None:
    assert tolerance("dequantize", dtype) == 0.0
    assert w.shape == (qw.shape[1], qw.shape[0]) and w.dtype == dtype
    assert not torch.isnan(w).any(), "unwritten (NaN-poisoned) output elements"
    expected = reference_dequantize(qw, dtype)
    mismatch = (w.view(torch.int16 if dtype == torch.float16 else torch.int32)
                != expected.view(torch.int16 if dtype == torch.float16 else torch.int32))
    assert not mismatch.any(), f"{int(mismatch.sum())} elements differ bitwise from awq_ref"
