"""Triton helpers that turn packed AWQ GEMM words into per-column values.

Word j of a row holds columns 8j..8j+7; column 8j + c sits in nibble COLUMN_NIBBLE[c] of it
(``awq_ref.formats.awq_gemm``, the inverse of AutoAWQ's ORDER), i.e. at bit shift
4 * COLUMN_NIBBLE[c]. The kernels read that table as one constexpr int, nibble c holding
COLUMN_NIBBLE[c] (``awq_gemm.COLUMN_NIBBLE_WORD``), so the layout module stays its only source.
"""
import triton
import triton.language as tl

from awq_harness.awq_ref.formats import awq_gemm

COLUMN_NIBBLES = tl.constexpr(awq_gemm.COLUMN_NIBBLE_WORD)
CODES_PER_WORD = tl.constexpr(awq_gemm.CODES_PER_WORD)
NIBBLE_BITS = tl.constexpr(32 // awq_gemm.CODES_PER_WORD)


@triton.jit
def nibble_shifts(BLOCK_N: tl.constexpr):
    """[BLOCK_N] bit shift of each column inside its word (BLOCK_N a multiple of 8)."""
    c = tl.arange(0, BLOCK_N) % CODES_PER_WORD
    table = tl.full((BLOCK_N,), COLUMN_NIBBLES, tl.int32)
    return ((table >> (c * NIBBLE_BITS)) & 0xF) * NIBBLE_BITS


@triton.jit
def spread_words(words):
    """[..., B] int32 -> [..., 8B]: each word repeated 8 times, one copy per column."""
    words = tl.interleave(words, words)
    words = tl.interleave(words, words)
    return tl.interleave(words, words)


@triton.jit
def unpack_codes(words, shifts):
    """[..., B] packed int32 words -> [..., 8B] int32 codes in [0, 15], in column order."""
    return (spread_words(words) >> shifts) & 0xF


@triton.jit
def dequantize_tile(words, zero_words, scales, shifts):
    """W_hat tile in fp32: words [BK, BN/8], zero_words [BN/8], scales [BN] -> [BK, BN].

    (q - z) is an integer in [-15, 15], so (q - z) * s is exact in fp32 for a fp16/bf16 s.
    """
    codes = unpack_codes(words, shifts[None, :])
    zeros = unpack_codes(zero_words, shifts)
    return (codes - zeros[None, :]).to(tl.float32) * scales.to(tl.float32)[None, :]
