"""W4A16 decode kernel on AutoAWQ's GEMV layout (``version: "gemv"``), split-K, fp32 accumulation.

    x [M, K] fp16/bf16/fp32, qweight [N, K/8], qzeros [N, ZW], scales [N, ZW*8], G -> out [M, N]

Layout ``awq_ref.formats.awq_gemv``: codes packed along the inputs in natural nibble order
(input k of output n is nibble k % 8 of word qweight[n, k // 8]); the zero of group g is
nibble g % 8 of qzeros[n, g // 8]; its scale is scales[n, g]; ZW pads the group axis as
AutoAWQ's ``calculate_zeros_width`` does, and the padding is never read. G is not stored in
the tensors (the checkpoint's ``q_group_size`` says it), so the wrapper takes it.

Each program owns BLOCK_N outputs and BLOCK_M rows and walks its K slice in BLOCK_K blocks
that never straddle a group (BLOCK_K divides G): one zero and one scale per output per
block. A block's [BLOCK_N, BLOCK_K] weight tile is read row-major, contiguous along K, the
way the layout lies on disk, dequantised exactly in fp32 ((q - z) is an integer in [-15, 15])
and applied to every row with an fp32 multiply and a reduction over K. No tl.dot: at decode
batch sizes it would pad M to 16. Grid (cdiv(N, BLOCK_N), SPLIT_K, cdiv(M, BLOCK_M)); the
partial sums go to a [SPLIT_K, M, N] fp32 buffer reduced by the host in a fixed order.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from awq_harness.kernels import checks, runtime, tuning
from awq_harness.kernels.configs import Config
from awq_harness.kernels.unpack import CODES_PER_WORD, NIBBLE_BITS, spread_words

MAX_BLOCK_M = 16
TILE_BUDGET = 8192  # max BLOCK_M * BLOCK_N * BLOCK_K values in flight per program


@triton.jit
def awq_gemv_layout_kernel(
    # pointers
    x_ptr, qweight_ptr, qzeros_ptr, scales_ptr, out_ptr,
    # dimensions
    M, N, K, group_size,
    # strides (elements; the weights and out have a contiguous last dimension)
    stride_x_m, stride_x_k, stride_qweight_n, stride_qzeros_n, stride_scales_n,
    stride_out_split, stride_out_m,
    # meta-parameters
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K,
):
    # -- map the program to an output block, a K slice and a block of rows
    pid_n, pid_k, pid_m = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok, n_ok = offs_m < M, offs_n < N
    shifts = (tl.arange(0, BLOCK_K) % CODES_PER_WORD) * NIBBLE_BITS  # natural nibble order along K

    # -- stream this slice's weight tiles once; multiply-add every row in fp32
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(pid_k * BLOCK_K, K, SPLIT_K * BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        offs_w = k0 // CODES_PER_WORD + tl.arange(0, BLOCK_K // CODES_PER_WORD)
        words = tl.load(qweight_ptr + offs_n[:, None] * stride_qweight_n + offs_w[None, :],
                        mask=n_ok[:, None] & (offs_w < K // CODES_PER_WORD)[None, :], other=0)
        codes = (spread_words(words) >> shifts[None, :]) & 0xF
        group = k0 // group_size
        zero_words = tl.load(qzeros_ptr + offs_n * stride_qzeros_n + group // CODES_PER_WORD, mask=n_ok, other=0)
        zeros = (zero_words >> ((group % CODES_PER_WORD) * NIBBLE_BITS)) & 0xF
        scales = tl.load(scales_ptr + offs_n * stride_scales_n + group, mask=n_ok, other=0.0)
        w = (codes - zeros[:, None]).to(tl.float32) * scales.to(tl.float32)[:, None]
        x = tl.load(x_ptr + offs_m[:, None] * stride_x_m + offs_k[None, :] * stride_x_k,
                    mask=m_ok[:, None] & (offs_k < K)[None, :], other=0.0).to(tl.float32)
        acc += tl.sum(x[:, None, :] * w[None, :, :], axis=2)

    # -- store the fp32 partial sum of this K slice
    out = out_ptr + pid_k * stride_out_split + offs_m[:, None] * stride_out_m + offs_n[None, :]
    tl.store(out, acc, mask=m_ok[:, None] & n_ok[None, :])


def rows_block(m: int) -> int:
    return min(MAX_BLOCK_M, triton.next_power_of_2(m))


def default_config(m: int, layer: checks.LayerShape) -> Config:
    """The one configuration the interpreter runs: 32 outputs, the widest K block the budget allows."""
    block_n = 32
    cap = max(checks.MIN_BLOCK, TILE_BUDGET // (rows_block(m) * block_n))
    return Config(block_m=rows_block(m), block_n=block_n, block_k=checks.largest_k_block(layer, cap=min(cap, 256)))


def _validated(config: Config, layer: checks.LayerShape) -> Config:
    checks.check_block("block_n", config.block_n, checks.MIN_BLOCK)
    checks.check_k_block(config.block_k, layer, checks.MIN_BLOCK)
    checks.check_split_k(config.split_k)
    return config


def awq_gemv_layout(x: torch.Tensor, qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor,
                    group_size: int, config: Config | None = None) -> torch.Tensor:
    """x [M, K] @ W_hat^T -> [M, N] in x.dtype for GEMV-layout weights of group size ``group_size``
    (-1 = per channel). Raises ValueError for bad input."""
    layer = checks.check_gemv_layout_weights(qweight, qzeros, scales, group_size)
    checks.check_activations(x, layer, qweight.device)
    m = x.shape[0]
    config = _validated(config or tuning.pick(
        "gemv_layout", m, layer, x, default_config,
        lambda c: awq_gemv_layout(x, qweight, qzeros, scales, group_size, c)), layer)
    checks.check_addressable("the split-K output", config.split_k * m * layer.n)
    qweight, qzeros, scales = (t.contiguous() for t in (qweight, qzeros, scales))
    partial = runtime.empty((config.split_k, m, layer.n), torch.float32, x.device)
    block_m = rows_block(m)
    grid = (triton.cdiv(layer.n, config.block_n), config.split_k, triton.cdiv(m, block_m))
    awq_gemv_layout_kernel[grid](
        x, qweight, qzeros, scales, partial,
        m, layer.n, layer.k, layer.group_size,
        x.stride(0), x.stride(1), qweight.stride(0), qzeros.stride(0), scales.stride(0),
        partial.stride(0), partial.stride(1),
        BLOCK_M=block_m, BLOCK_N=config.block_n, BLOCK_K=config.block_k, SPLIT_K=config.split_k,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return partial.sum(dim=0).to(x.dtype)
