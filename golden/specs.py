"""The golden checkpoints: small, named, each made by awq_ref from a tiny seeded model.

Each name says family, layout, group (pc = per channel), symmetric or not, and method.
A golden is rebuilt from its spec alone, so its bytes pin every packing and config detail.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from awq_harness.awq_ref.primitives.quant import QuantSpec


@dataclass(frozen=True)
class GoldenSpec:
    name: str
    family: str         # tiny model family (awq_ref.data.tiny)
    layout: str         # gemm | gemv (AWQ versions) | compressed-tensors | gptq
    group_size: int
    zero_point: bool = True
    method: str = "rtn"
    seed: int = 0       # tiny model weights
    bits: int = 4
    eight_bit: tuple[str, ...] = ()  # compressed-tensors: linears in a second, 8-bit config group
    act_order: bool = False          # GPTQ act-order (compressed-tensors: weight_g_idx)

    @property
    def quant(self) -> QuantSpec:
        return QuantSpec(self.bits, self.group_size, self.zero_point)

    def to_json(self) -> dict:
        """The fields added after the first goldens only where set, so older manifests stay as they are."""
        out = asdict(self)
        for key in ("eight_bit", "act_order"):
            if not out[key]:
                del out[key]
        return out


GOLDENS = (
    GoldenSpec("llama-gemm-g128-rtn", "llama", "gemm", 128),
    GoldenSpec("llama-gemm-g64-rtn", "llama", "gemm", 64),
    GoldenSpec("llama-gemm-g32-rtn", "llama", "gemm", 32),
    GoldenSpec("llama-gemm-pc-rtn", "llama", "gemm", -1),
    GoldenSpec("llama-gemm-g64-sym-rtn", "llama", "gemm", 64, zero_point=False),
    GoldenSpec("llama-gemv-g64-rtn", "llama", "gemv", 64),
    GoldenSpec("llama-gemv-g128-sym-rtn", "llama", "gemv", 128, zero_point=False),
    GoldenSpec("qwen2-gemm-g64-rtn", "qwen2", "gemm", 64, seed=1),
    GoldenSpec("opt-gemm-g128-rtn", "opt", "gemm", 128, seed=2),
    GoldenSpec("llama-gemm-g64-awq", "llama", "gemm", 64, method="awq", seed=4),
    GoldenSpec("opt-gemm-g128-awq", "opt", "gemm", 128, method="awq", seed=5),
    GoldenSpec("qwen2-gemv-g32-awq", "qwen2", "gemv", 32, method="awq", seed=6),
    GoldenSpec("llama-ct-g64-rtn", "llama", "compressed-tensors", 64),
    GoldenSpec("llama-gptq-g64-sym", "llama", "gptq", 64, zero_point=False, method="gptq", seed=7),
    GoldenSpec("qwen2-ct-g128-sym-rtn", "qwen2", "compressed-tensors", 128, zero_point=False, seed=1),
    GoldenSpec("gemma2-gemm-g64-awq", "gemma2", "gemm", 64, method="awq", seed=8),
    GoldenSpec("phi3-gemm-g64-awq", "phi3", "gemm", 64, method="awq", seed=9),
    GoldenSpec("qwen3-gemm-g64-rtn", "qwen3", "gemm", 64, seed=10),
    GoldenSpec("qwen2_moe-gemm-g64-awq", "qwen2_moe", "gemm", 64, method="awq", seed=11),
    GoldenSpec("llama-ct-g64-w4w8-rtn", "llama", "compressed-tensors", 64, seed=12,
               eight_bit=("model.layers.0.mlp.down_proj", "model.layers.1.self_attn.q_proj",
                          "model.layers.1.self_attn.k_proj", "model.layers.1.self_attn.v_proj",
                          "model.layers.1.self_attn.o_proj")),
    GoldenSpec("llama-ct-g64-actorder-gptq", "llama", "compressed-tensors", 64, method="gptq", seed=13,
               act_order=True),
)
BY_NAME = {spec.name: spec for spec in GOLDENS}
