"""Fused W4A16 GEMM on the AWQ GEMM layout: out = x @ W_hat, fp32 accumulation, split-K.

    x [M, K] fp16/bf16/fp32, qweight [K, N/8], qzeros [K/G, N/8], scales [K/G, N] -> out [M, N]

Grid (cdiv(M, BLOCK_M) * cdiv(N, BLOCK_N), SPLIT_K). Program (tile, s) walks the K blocks
s, s + SPLIT_K, s + 2*SPLIT_K, ... ; a K block never straddles two groups (BLOCK_K divides G),
so each block needs one row of zeros and scales. Each block's weights are dequantised in
fp32 (exact), rounded to the dot operand dtype (fp16 or bf16 like x on a GPU: tensor cores;
fp32 for fp32 x, input precision "ieee", so no TF32; fp32 for bf16 x under the interpreter,
which computes bf16 dots wrongly) and fed to tl.dot with an fp32 accumulator (out_dtype given
explicitly: never an fp16/bf16 accumulator).

With SPLIT_K = 1 the program rounds its sum straight into out (x.dtype, unless bf16); with
SPLIT_K > 1 each program stores its fp32 partial sum to a [SPLIT_K, M, N] buffer and the
host adds the slices in a fixed order (deterministic; no atomics). bf16 output always goes
through the fp32 buffer because the interpreter truncates fp32 -> bf16 instead of rounding.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from awq_harness.kernels import checks, runtime, tuning
from awq_harness.kernels.configs import Config
from awq_harness.kernels.unpack import dequantize_tile, nibble_shifts


@triton.jit
def awq_gemm_kernel(
    # pointers
    x_ptr, qweight_ptr, qzeros_ptr, scales_ptr, out_ptr,
    # dimensions
    M, N, K, group_size,
    # strides (elements; weights and out have a contiguous last dimension)
    stride_x_m, stride_x_k, stride_qweight_k, stride_qzeros_g, stride_scales_g,
    stride_out_split, stride_out_m,
    # meta-parameters
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    SPLIT_K, DOT_DTYPE: tl.constexpr, PRECISION: tl.constexpr,
):
    # -- map the program to an output tile and a K slice
    tiles_n = tl.cdiv(N, BLOCK_N)
    pid_m, pid_n, pid_k = tl.program_id(0) // tiles_n, tl.program_id(0) % tiles_n, tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_w = pid_n * (BLOCK_N // 8) + tl.arange(0, BLOCK_N // 8)
    m_ok, n_ok, w_ok = offs_m < M, offs_n < N, offs_w < N // 8
    shifts = nibble_shifts(BLOCK_N)

    # -- accumulate x[:, kb] @ W_hat[kb, :] over this program's K blocks, in fp32
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(pid_k * BLOCK_K, K, SPLIT_K * BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_ok = offs_k < K
        x = tl.load(x_ptr + offs_m[:, None] * stride_x_m + offs_k[None, :] * stride_x_k,
                    mask=m_ok[:, None] & k_ok[None, :], other=0.0)
        words = tl.load(qweight_ptr + offs_k[:, None] * stride_qweight_k + offs_w[None, :],
                        mask=k_ok[:, None] & w_ok[None, :], other=0)
        group = k0 // group_size
        zero_words = tl.load(qzeros_ptr + group * stride_qzeros_g + offs_w, mask=w_ok, other=0)
        scales = tl.load(scales_ptr + group * stride_scales_g + offs_n, mask=n_ok, other=0.0)
        w = dequantize_tile(words, zero_words, scales, shifts)
        acc = tl.dot(x.to(tl.float32).to(DOT_DTYPE), w.to(DOT_DTYPE), acc,
                     input_precision=PRECISION, out_dtype=tl.float32)

    # -- store this program's sum (its split-K slice when SPLIT_K > 1)
    out = out_ptr + pid_k * stride_out_split + offs_m[:, None] * stride_out_m + offs_n[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


GemmConfig = Config  # (block_m, block_n, block_k, split_k, num_warps, num_stages)


def default_config(m: int, layer: checks.LayerShape) -> GemmConfig:
    """Tiles that keep dot blocks >= 16; split K when the output grid alone is small."""
    block_m = min(64, max(16, triton.next_power_of_2(m)))
    block_n = 64 if layer.n <= 4096 else 128
    block_k = checks.largest_k_block(layer, cap=64)
    tiles = triton.cdiv(m, block_m) * triton.cdiv(layer.n, block_n)
    k_blocks = triton.cdiv(layer.k, block_k)
    split_k = 1 if runtime.INTERPRETED else max(1, min(8, k_blocks, 128 // tiles))
    return GemmConfig(block_m, block_n, block_k, split_k)


def _validated(config: GemmConfig, layer: checks.LayerShape) -> GemmConfig:
    checks.check_block("block_m", config.block_m, checks.MIN_BLOCK)
    checks.check_block("block_n", config.block_n, checks.MIN_BLOCK)
    checks.check_k_block(config.block_k, layer, checks.MIN_BLOCK)
    checks.check_split_k(config.split_k)
    return config


def dot_operand_names(x_dtype: str, interpreted: bool) -> tuple[str, str]:
    """(operand dtype name, input precision) of the tl.dot for activations of dtype ``x_dtype``.

    fp16 and bf16 x multiply on tensor cores in their own dtype (the weight tile is rounded to
    it); fp32 x exactly (ieee, no TF32). The interpreter computes bf16 dots wrongly, so there
    bf16 x goes through the exact fp32 dot instead."""
    if x_dtype == "float16" or (x_dtype == "bfloat16" and not interpreted):
        return x_dtype, "tf32"
    return "float32", "ieee"


def dot_operands(x_dtype: torch.dtype) -> tuple[tl.dtype, str]:
    operand, precision = dot_operand_names(str(x_dtype).removeprefix("torch."), runtime.INTERPRETED)
    return getattr(tl, operand), precision


def awq_gemm(x: torch.Tensor, qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor,
             config: GemmConfig | None = None) -> torch.Tensor:
    """x [M, K] @ W_hat [K, N] -> [M, N] in x.dtype. Raises ValueError for bad input."""
    layer = checks.check_weights(qweight, qzeros, scales)
    checks.check_activations(x, layer, qweight.device)
    m = x.shape[0]
    config = _validated(config or tuning.pick("gemm", m, layer, x, default_config,
                                                 lambda c: awq_gemm(x, qweight, qzeros, scales, c)), layer)
    checks.check_addressable("the split-K output", config.split_k * m * layer.n)
    qweight, qzeros, scales = (t.contiguous() for t in (qweight, qzeros, scales))
    direct = config.split_k == 1 and x.dtype != torch.bfloat16
    out = runtime.empty((config.split_k, m, layer.n), x.dtype if direct else torch.float32, x.device)
    grid = (triton.cdiv(m, config.block_m) * triton.cdiv(layer.n, config.block_n), config.split_k)
    operand_dtype, precision = dot_operands(x.dtype)
    awq_gemm_kernel[grid](
        x, qweight, qzeros, scales, out,
        m, layer.n, layer.k, layer.group_size,
        x.stride(0), x.stride(1), qweight.stride(0), qzeros.stride(0), scales.stride(0),
        out.stride(0), out.stride(1),
        BLOCK_M=config.block_m, BLOCK_N=config.block_n, BLOCK_K=config.block_k,
        SPLIT_K=config.split_k, DOT_DTYPE=operand_dtype, PRECISION=precision,
        num_warps=config.num_warps, num_stages=config.num_stages,
    )
    return out[0] if direct else out.sum(dim=0).to(x.dtype)
