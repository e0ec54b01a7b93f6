"""Dequantise an AWQ GEMM-layout weight to a dense [K, N] matrix: W_hat = (q - z) * s.

Each program writes one [BLOCK_K, BLOCK_N] tile of the output. Rows of a tile may belong to
different groups, so zeros and scales are gathered per row (any group size works here).

    qweight [K, N/8] int32, qzeros [K/G, N/8] int32, scales [K/G, N]  ->  out [K, N]

The value is computed exactly in fp32 and rounded once to the output dtype, which makes the
result bit-identical to awq_ref's ``(q - z) * s`` rounded to the same dtype.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from awq_harness.kernels import checks, runtime
from awq_harness.kernels.unpack import nibble_shifts, unpack_codes

OUT_DTYPES = (torch.float16, torch.float32)


@triton.jit
def awq_dequantize_kernel(
    # pointers
    qweight_ptr, qzeros_ptr, scales_ptr, out_ptr,
    # dimensions
    K, N, group_size,
    # strides (elements; the last dimension of every tensor is contiguous)
    stride_qweight_k, stride_qzeros_g, stride_scales_g, stride_out_k,
    # meta-parameters
    BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr,
):
    # -- which tile of the output this program writes
    offs_k = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_w = tl.program_id(1) * (BLOCK_N // 8) + tl.arange(0, BLOCK_N // 8)
    k_ok, n_ok, w_ok = offs_k < K, offs_n < N, offs_w < N // 8
    groups = offs_k // group_size

    # -- load packed codes and the zeros/scales of each row's group
    words = tl.load(qweight_ptr + offs_k[:, None] * stride_qweight_k + offs_w[None, :],
                    mask=k_ok[:, None] & w_ok[None, :], other=0)
    zero_words = tl.load(qzeros_ptr + groups[:, None] * stride_qzeros_g + offs_w[None, :],
                         mask=k_ok[:, None] & w_ok[None, :], other=0)
    scales = tl.load(scales_ptr + groups[:, None] * stride_scales_g + offs_n[None, :],
                     mask=k_ok[:, None] & n_ok[None, :], other=0)

    # -- (q - z) * s, exact in fp32, rounded once on store
    shifts = nibble_shifts(BLOCK_N)[None, :]
    q_minus_z = unpack_codes(words, shifts) - unpack_codes(zero_words, shifts)
    w = q_minus_z.to(tl.float32) * scales.to(tl.float32)
    tl.store(out_ptr + offs_k[:, None] * stride_out_k + offs_n[None, :],
             w.to(out_ptr.dtype.element_ty), mask=k_ok[:, None] & n_ok[None, :])


def awq_dequantize(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor,
                   dtype: torch.dtype = torch.float16, *, block_k: int = 32, block_n: int = 64) -> torch.Tensor:
    """W_hat [K, N] in ``dtype`` (float16 or float32). Raises ValueError for bad input."""
    layer = checks.check_weights(qweight, qzeros, scales)
    if dtype not in OUT_DTYPES:
        raise ValueError(f"dequantise to float16 or float32, got {dtype} (cast the fp32 result)")
    checks.check_block("block_k", block_k, 1)
    checks.check_block("block_n", block_n, 8)
    qweight, qzeros, scales = (t.contiguous() for t in (qweight, qzeros, scales))
    out = runtime.empty((layer.k, layer.n), dtype, qweight.device)
    grid = (triton.cdiv(layer.k, block_k), triton.cdiv(layer.n, block_n))
    awq_dequantize_kernel[grid](
        qweight, qzeros, scales, out,
        layer.k, layer.n, layer.group_size,
        qweight.stride(0), qzeros.stride(0), scales.stride(0), out.stride(0),
        BLOCK_K=block_k, BLOCK_N=block_n,
    )
    return out
