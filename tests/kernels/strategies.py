"""Hypothesis strategies for kernel property tests: small layers (the interpreter runs each
program on the CPU), every group size, zero-point and symmetric, odd and edge shapes."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from awq_harness.kernels.gemm import GemmConfig
from awq_harness.kernels.gemv import MAX_ROWS, GemvConfig
from tests.kernels.oracle import Layer

GROUP_SIZES = (32, 64, 128, -1)
X_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
SCALE_DTYPES = (torch.float16, torch.float16, torch.bfloat16, torch.float32)  # fp16 is what AWQ stores
MAX_K, MAX_N = 256, 96


@st.composite
def layers(draw, max_k: int = MAX_K, max_n: int = MAX_N) -> Layer:
    group = draw(st.sampled_from(GROUP_SIZES))
    if group == -1:
        k = draw(st.integers(1, max_k))  # per channel: any K, usually not a multiple of a block
    else:
        k = group * draw(st.integers(1, max(1, max_k // group)))
    return Layer(
        k=k,
        n=8 * draw(st.integers(1, max_n // 8)),  # N/8 words; often not a multiple of BLOCK_N
        group_size=group,
        zero_point=draw(st.booleans()),
        seed=draw(st.integers(0, 2**31 - 1)),
        scale_dtype=draw(st.sampled_from(SCALE_DTYPES)),
    )


def rows(max_rows: int) -> st.SearchStrategy[int]:
    """M = 1 (decode) often, otherwise any M up to max_rows (odd ones included)."""
    return st.one_of(st.just(1), st.integers(1, max_rows))


def k_blocks(layer: Layer, choices=(16, 32, 64)) -> st.SearchStrategy[int]:
    """K blocks that never straddle a group (the wrappers reject those)."""
    fits = [b for b in choices if layer.group_size == -1 or layer.group_size % b == 0]
    return st.sampled_from(fits)


@dataclass(frozen=True)
class MatmulCase:
    layer: Layer
    m: int
    x_dtype: torch.dtype


@st.composite
def gemm_cases(draw):
    layer = draw(layers())
    case = MatmulCase(layer=layer, m=draw(rows(40)), x_dtype=draw(st.sampled_from(X_DTYPES)))
    config = GemmConfig(block_m=draw(st.sampled_from([16, 32])), block_n=draw(st.sampled_from([16, 32, 64])),
                        block_k=draw(k_blocks(layer)), split_k=draw(st.sampled_from([1, 2, 3])))
    return case, config


@st.composite
def gemv_cases(draw):
    layer = draw(layers())
    case = MatmulCase(layer=layer, m=draw(rows(MAX_ROWS)), x_dtype=draw(st.sampled_from(X_DTYPES)))
    config = GemvConfig(block_n=draw(st.sampled_from([16, 32, 64])), block_k=draw(k_blocks(layer)),
                        split_k=draw(st.sampled_from([1, 2, 4])))
    return case, config

# Examples per property test: sized so tests/kernels runs in a few minutes on 2 shared cores.
# On a GPU each new combination of block sizes and dtypes is a JIT compilation (about a second
# of CPU), which dominates the native run, so the GPU tier draws a share of them
# (AWQ_KERNEL_EXAMPLES_SCALE, default 0.4 where CUDA is present) to stay in its time budget.
_SCALE = float(os.environ.get("AWQ_KERNEL_EXAMPLES_SCALE", "0.4" if torch.cuda.is_available() else "1"))
EXAMPLES = {name: max(10, round(n * _SCALE)) for name, n in
            {"dequantize": 60, "gemm": 100, "gemv": 100, "awq_linear": 40, "gemv_layout": 40}.items()}
