"""Bytes, FLOPs and the memory-only speed-up bound of an AWQ linear against fp16.

AWQ GEMM layout per layer: 4-bit codes (K*N/2 bytes), one fp16 scale and one 4-bit zero per
group of G inputs per output (K/G * N * (2 + 1/2) bytes). Both sides also read x [M, K] and
write y [M, N] in fp16. Memory-bound time is bytes / bandwidth, so no kernel can beat fp16
by more than fp16_bytes / awq_bytes; at M = 1, G = 128 that is 16 / 4.15625 = 3.85x.
"""
from __future__ import annotations

FP16_BYTES = 2


def activation_bytes(m: int, k: int, n: int) -> float:
    return FP16_BYTES * (m * k + m * n)


def fp16_bytes(m: int, k: int, n: int) -> float:
    return FP16_BYTES * k * n + activation_bytes(m, k, n)


def awq_bytes(m: int, k: int, n: int, group_size: int) -> float:
    groups = k // group_size
    return k * n / 2 + groups * n * (FP16_BYTES + 0.5) + activation_bytes(m, k, n)


def flops(m: int, k: int, n: int) -> float:
    return 2.0 * m * k * n


def speedup_bound(m: int, k: int, n: int, group_size: int) -> float:
    return fp16_bytes(m, k, n) / awq_bytes(m, k, n, group_size)
