"""Layer shapes (K inputs, N outputs) of real models, and the batch sizes to benchmark."""
from __future__ import annotations

from dataclasses import dataclass

# name -> (K, N). Llama-2-7B: hidden 4096, MLP 11008; Llama-3-8B: hidden 4096, 8 KV heads of
# 128 (k/v out 1024), MLP 14336; Llama-2-70B: hidden 8192, 8 KV heads (k/v out 1024), MLP 28672.
LAYERS: dict[str, tuple[int, int]] = {
    "llama-2-7b.attn.q_proj": (4096, 4096),
    "llama-2-7b.mlp.gate_proj": (4096, 11008),
    "llama-2-7b.mlp.down_proj": (11008, 4096),
    "llama-3-8b.attn.q_proj": (4096, 4096),
    "llama-3-8b.attn.k_proj": (4096, 1024),
    "llama-3-8b.mlp.gate_proj": (4096, 14336),
    "llama-3-8b.mlp.down_proj": (14336, 4096),
    "llama-2-70b.attn.q_proj": (8192, 8192),
    "llama-2-70b.attn.k_proj": (8192, 1024),
    "llama-2-70b.mlp.gate_proj": (8192, 28672),
    "llama-2-70b.mlp.down_proj": (28672, 8192),
}
BATCH_SIZES = (1, 4, 16, 64, 256, 1024)
GROUP_SIZE = 128

# Dry mode: tiny shapes the CPU interpreter runs in well under a second each.
DRY_LAYERS: dict[str, tuple[int, int]] = {"dry.square": (128, 64), "dry.wide": (64, 128)}
DRY_BATCH_SIZES = (1, 4, 16)
DRY_GROUP_SIZE = 64


@dataclass(frozen=True)
class BenchCase:
    kernel: str  # "gemv" | "gemm" | "awq_linear"
    shape: str
    m: int
    k: int
    n: int
    group_size: int

    @property
    def key(self) -> str:
        return f"{self.kernel}|{self.shape}|M={self.m}"


def bench_cases(dry_run: bool, gemv_max_rows: int = 16) -> list[BenchCase]:
    layers = DRY_LAYERS if dry_run else LAYERS
    batches = DRY_BATCH_SIZES if dry_run else BATCH_SIZES
    g = DRY_GROUP_SIZE if dry_run else GROUP_SIZE
    cases = []
    for shape, (k, n) in layers.items():
        for m in batches:
            kernels = (["gemv"] if m <= gemv_max_rows else []) + ["gemm", "awq_linear"]
            cases += [BenchCase(kernel, shape, m, k, n, g) for kernel in kernels]
    return cases
