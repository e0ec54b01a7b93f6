"""W4A16 GEMV for decoding (M = 1 up to a few rows) on the AWQ GEMM layout, split-K.

    x [M, K] fp16/bf16/fp32, qweight [K, N/8], qzeros [K/G, N/8], scales [K/G, N] -> out [M, N]

At small M the layer is memory-bound: the job is to stream qweight once at full bandwidth.
No tl.dot (it would pad M to 16); each program dequantises a [BLOCK_K, BLOCK_N] weight tile
in fp32 once and applies it to all M rows with an fp32 multiply and a reduction over K:
acc[BLOCK_M, BLOCK_N] += sum_k x[:, k, None] * W_hat[None, k, :]. BLOCK_M is the next power
of two >= M, so the broadcast tile is BLOCK_M * BLOCK_K * BLOCK_N values; configs keep that
product bounded (register budget on a GPU). Grid (cdiv(N, BLOCK_N), SPLIT_K): split-K keeps
enough programs in flight to saturate memory when N alone gives too few. The partial sums
go to a [SPLIT_K, M, N] fp32 buffer reduced by the host in a fixed order (no atomics).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from awq_harness.kernels import checks, runtime, tuning
from awq_harness.kernels.configs import Config
from awq_harness.kernels.unpack import dequantize_tile, nibble_shifts

MAX_ROWS = 16  # a bigger batch belongs to the GEMM kernel
TILE_BUDGET = 8192  # max BLOCK_M * BLOCK_K * BLOCK_N values in flight per program


@triton.jit
def awq_gemv_kernel(
    # pointers
    x_ptr, qweight_ptr, qzeros_ptr, scales_ptr, out_ptr,
    # dimensions
    M, N, K, group_size,
    # strides (elements; weights and out have a contiguous last dimension)
    stride_x_m, stride_x_k, stride_qweight_k, stride_qzeros_g, stride_scales_g,
    stride_out_split, stride_out_m,
    # meta-parameters
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K,
):
    # -- map the program to a column block and a K slice; all M rows live in one program
    pid_n, pid_k = tl.program_id(0), tl.program_id(1)
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_w = pid_n * (BLOCK_N // 8) + tl.arange(0, BLOCK_N // 8)
    m_ok, n_ok, w_ok = offs_m < M, offs_n < N, offs_w < N // 8
    shifts = nibble_shifts(BLOCK_N)

    # -- stream this slice's weight tiles once; multiply-add every row in fp32
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(pid_k * BLOCK_K, K, SPLIT_K * BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_ok = offs_k < K
        words = tl.load(qweight_ptr + offs_k[:, None] * stride_qweight_k + offs_w[None, :],
                        mask=k_ok[:, None] & w_ok[None, :], other=0)
        group = k0 // group_size
        zero_words = tl.load(qzeros_ptr + group * stride_qzeros_g + offs_w, mask=w_ok, other=0)
        scales = tl.load(scales_ptr + group * stride_scales_g + offs_n, mask=n_ok, other=0.0)
        w = dequantize_tile(words, zero_words, scales, shifts)
        x = tl.load(x_ptr + offs_m[:, None] * stride_x_m + offs_k[None, :] * stride_x_k,
                    mask=m_ok[:, None] & k_ok[None, :], other=0.0).to(tl.float32)
        acc += tl.sum(x[:, :, None] * w[None, :, :], axis=1)

    # -- store the fp32 partial sum of this K slice
    out = out_ptr + pid_k * stride_out_split + offs_m[:, None] * stride_out_m + offs_n[None, :]
    tl.store(out, acc, mask=m_ok[:, None] & n_ok[None, :])


@dataclass(frozen=True)
class GemvConfig:
    block_n: int
    block_k: int
    split_k: int
    num_warps: int = 4
    num_stages: int = 3


def _from_list(config: Config) -> GemvConfig:
    return GemvConfig(config.block_n, config.block_k, config.split_k, config.num_warps, config.num_stages)


def _rows_block(m: int) -> int:
    return triton.next_power_of_2(m)


def default_config(m: int, layer: checks.LayerShape) -> GemvConfig:
    """Wide K tiles for M = 1, narrower as M grows; split K to fill the GPU at small N."""
    block_n = 64
    cap = max(checks.MIN_BLOCK, TILE_BUDGET // (_rows_block(m) * block_n))
    block_k = checks.largest_k_block(layer, cap=min(cap, 128))
    k_blocks = triton.cdiv(layer.k, block_k)
    n_blocks = triton.cdiv(layer.n, block_n)
    split_k = 1 if runtime.INTERPRETED else max(1, min(16, k_blocks, 512 // n_blocks))
    return GemvConfig(block_n, block_k, split_k)


def _validated(config: GemvConfig, layer: checks.LayerShape) -> GemvConfig:
    checks.check_block("block_n", config.block_n, checks.MIN_BLOCK)
    checks.check_k_block(config.block_k, layer, checks.MIN_BLOCK)
    checks.check_split_k(config.split_k)
    return config


def awq_gemv(x: torch.Tensor, qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor,
             config: GemvConfig | None = None) -> torch.Tensor:
    """x [M, K] @ W_hat [K, N] -> [M, N] in x.dtype, for 1 <= M <= MAX_ROWS."""
    layer = checks.check_weights(qweight, qzeros, scales)
    checks.check_activations(x, layer, qweight.device)
    m = x.shape[0]
    if m > MAX_ROWS:
        raise ValueError(f"awq_gemv takes at most {MAX_ROWS} rows, got M = {m}; use awq_gemm")
    if config is None:
        picked = tuning.pick("gemv", m, layer, x, default_config,
                             lambda c: awq_gemv(x, qweight, qzeros, scales, _from_list(c)))
        config = _from_list(picked) if isinstance(picked, Config) else picked
    config = _validated(config, layer)
    checks.check_addressable("the split-K output", config.split_k * m * layer.n)
    qweight, qzeros, scales = (t.contiguous() for t in (qweight, qzeros, scales))
    partial = runtime.empty((config.split_k, m, layer.n), torch.float32, x.device)
    grid = (triton.cdiv(layer.n, config.block_n), config.split_k)
    awq_gemv_kernel[grid](
        x, qweight, qzeros, scales, partial,
        m, layer.n, layer.k, layer.group_size,
        x.stride(0), x.stride(1), qweight.stride(0), qzeros.stride(0), scales.stride(0),
        partial.stride(0), partial.stride(1),
        BLOCK_M=_rows_block(m), BLOCK_N=config.block_n, BLOCK_K=config.block_k, SPLIT_K=config.split_k,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return partial.sum(dim=0).to(x.dtype)
