"""Launch configurations per GPU architecture: the lists an autotuner picks from.

A configuration is the tile (BLOCK_M, BLOCK_N, BLOCK_K cap), split-K and the launch's
num_warps / num_stages. The lists are keyed on the kernel and the M bucket; the layer's K, N
and group size G then fix each entry (``for_layer``): BLOCK_K is the largest power of two
<= its cap that divides G (a K block never straddles a group), BLOCK_N never exceeds the
next power of two of N, and split-K is the power of two that brings the grid closest to
FILL_PROGRAMS programs without more slices than K blocks (decode at small N needs it to
keep every SM streaming weights). The same shape as Triton's matmul tutorial and vLLM's
awq_triton: a handful of tiles per M range, deeper software pipelines (num_stages) where
shared memory allows: the consumer Ampere/Ada parts (sm_86, sm_89) have ~99 KB of shared
memory per block, A100 (sm_80) ~163 KB, H100/H200 (sm_90) ~227 KB.

``kernels.compile_check`` compiles every entry for every architecture here; the Triton
interpreter (CPU) runs one configuration only, the wrappers' ``default_config``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import triton

from awq_harness.kernels.checks import LayerShape, largest_k_block


@dataclass(frozen=True)
class Arch:
    name: str  # "sm_90"
    capability: int  # 90
    shared_bytes: int  # opt-in dynamic shared memory per block (cudaDevAttrMaxSharedMemoryPerBlockOptin)
    registers_per_block: int = 65536
    registers_per_thread: int = 255
    sms: int = 108


ARCHS = {a.name: a for a in (
    Arch("sm_80", 80, 166912, sms=108),   # A100
    Arch("sm_86", 86, 101376, sms=84),    # A10, RTX 30xx
    Arch("sm_89", 89, 101376, sms=128),   # L4, L40S, RTX 40xx
    Arch("sm_90", 90, 232448, sms=132),   # H100, H200
)}


@dataclass(frozen=True)
class Config:
    block_m: int  # unused by the GEMV kernels (they take BLOCK_M = next power of two of M)
    block_n: int
    block_k: int  # a cap until ``for_layer`` fixes it
    split_k: int = 1
    num_warps: int = 4
    num_stages: int = 3


FILL_PROGRAMS = 256
MAX_ROWS = 2**31 - 1  # the last bucket of a kernel that takes any M
MAX_SPLIT_K = 16
# kernel -> ((largest M of the bucket, [configs]), ...); M beyond the last bucket is not the kernel's
_AMPERE = {
    "gemm": (
        (16, [Config(16, 64, 64, num_stages=3), Config(16, 128, 64, num_stages=3), Config(16, 64, 128, num_stages=4)]),
        (32, [Config(32, 64, 64), Config(32, 128, 64)]),
        (64, [Config(64, 64, 64), Config(64, 128, 32, num_stages=4)]),
        (255, [Config(64, 128, 64), Config(128, 64, 64), Config(128, 128, 32, num_warps=8)]),
        (MAX_ROWS, [Config(128, 128, 32, num_warps=8), Config(128, 64, 64), Config(64, 128, 64)]),
    ),
    "gemv": (
        (1, [Config(1, 64, 128), Config(1, 128, 64), Config(1, 32, 256, num_stages=4)]),
        (4, [Config(4, 64, 32), Config(4, 32, 64)]),
        (16, [Config(16, 32, 16), Config(16, 16, 32, num_warps=2)]),
    ),
    "gemv_layout": (
        (1, [Config(1, 32, 256), Config(1, 64, 128), Config(1, 16, 512, num_stages=4)]),
        (4, [Config(4, 32, 64), Config(4, 16, 128)]),
        (16, [Config(16, 16, 32, num_warps=2), Config(16, 32, 16)]),
    ),
}
_CONSUMER = {**_AMPERE, "gemm": (
    (16, [Config(16, 64, 64, num_stages=3), Config(16, 128, 64, num_stages=2)]),
    (32, [Config(32, 64, 64), Config(32, 128, 64, num_stages=2)]),
    (64, [Config(64, 64, 64), Config(64, 128, 32, num_stages=3)]),
    (255, [Config(64, 128, 64, num_stages=2), Config(128, 64, 64, num_stages=2), Config(128, 128, 32, num_warps=8)]),
    (MAX_ROWS, [Config(128, 128, 32, num_warps=8, num_stages=2), Config(128, 64, 64, num_stages=2)]),
)}
_HOPPER = {**_AMPERE, "gemm": (
    *_AMPERE["gemm"][:3],
    (255, [Config(64, 128, 64, num_stages=4), Config(128, 128, 64, num_warps=8), Config(128, 64, 64)]),
    (MAX_ROWS, [Config(128, 128, 64, num_warps=8), Config(128, 64, 64)]),  # 128x256x64 spills on sm_90
)}
TABLES = {"sm_80": _AMPERE, "sm_86": _CONSUMER, "sm_89": _CONSUMER, "sm_90": _HOPPER}
KERNELS = tuple(_AMPERE)


def arch(name: str) -> Arch:
    if name not in ARCHS:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHS)}")
    return ARCHS[name]


def bucket(kernel: str, m: int, arch_name: str) -> tuple[int, list[Config]]:
    """(largest M of the bucket, its configs) for M rows."""
    for top, entries in TABLES[arch(arch_name).name][kernel]:
        if m <= top:
            return top, entries
    raise ValueError(f"{kernel} has no configuration for M = {m} (largest bucket {top})")


def _split_k(tiles: int, k_blocks: int) -> int:
    split = 1
    while split * 2 <= min(MAX_SPLIT_K, k_blocks) and tiles * split * 2 <= FILL_PROGRAMS:
        split *= 2
    return split


def for_layer(config: Config, kernel: str, m: int, layer: LayerShape) -> Config:
    """The entry fixed for this layer: BLOCK_K dividing G, BLOCK_N fitting N, split-K filling the GPU."""
    block_k = largest_k_block(layer, cap=config.block_k)
    block_n = min(config.block_n, max(16, triton.next_power_of_2(layer.n)))
    block_m = config.block_m if kernel == "gemm" else triton.next_power_of_2(m)
    tiles = triton.cdiv(layer.n, block_n) * (triton.cdiv(m, block_m) if kernel == "gemm" else 1)
    split_k = _split_k(tiles, triton.cdiv(layer.k, block_k))
    return replace(config, block_m=block_m, block_n=block_n, block_k=block_k, split_k=split_k)


def candidates(arch_name: str, kernel: str, m: int, layer: LayerShape) -> list[Config]:
    """Every configuration the autotuner may pick for this kernel, M and layer (duplicates dropped)."""
    _, entries = bucket(kernel, m, arch_name)
    return list(dict.fromkeys(for_layer(c, kernel, m, layer) for c in entries))


def arch_of_capability(major: int, minor: int) -> str:
    """'sm_90' for (9, 0); the nearest listed architecture at or below it."""
    cap = major * 10 + minor
    known = [a for a in ARCHS.values() if a.capability <= cap]
    if not known:
        raise ValueError(f"compute capability {major}.{minor} is older than every listed architecture")
    return max(known, key=lambda a: a.capability).name
