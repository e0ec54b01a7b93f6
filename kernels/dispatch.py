"""``awq_linear``: y = x @ W_hat + bias through the kernel that suits the layout and batch size.

The checkpoint's ``version`` names the layout. AutoAWQ's GEMV layout (``"gemv"``, codes
packed along the inputs) has one kernel, ``awq_gemv_layout``, for every M (its layout exists
for decode; it does not store the group size, so the caller passes the checkpoint's). The
GEMM layout (``"gemm"``) by rows:

    rows M (all leading dims of x flattened)   path
    1 .. GEMV_MAX_ROWS                          awq_gemv   (memory-bound decode)
    .. DEQUANT_MIN_ROWS - 1                     awq_gemm   (fused dequant + tl.dot)
    DEQUANT_MIN_ROWS ..                         awq_dequantize, then torch.matmul (compute-bound;
                                                the one-off dequant is amortised over many rows)

The thresholds follow vLLM's AWQ dispatch (dequantise from 256 tokens) and are module
constants so a GPU benchmark can move them.
"""
from __future__ import annotations

import torch

from awq_harness.kernels import checks
from awq_harness.kernels.dequant import awq_dequantize
from awq_harness.kernels.gemm import awq_gemm
from awq_harness.kernels.gemv import awq_gemv
from awq_harness.kernels.gemv_layout import awq_gemv_layout

GEMV_MAX_ROWS = 4
DEQUANT_MIN_ROWS = 256
PATHS = ("gemv", "gemm", "dequant+matmul")
VERSIONS = ("gemm", "gemv")


def choose_path(rows: int) -> str:
    if rows <= GEMV_MAX_ROWS:
        return "gemv"
    return "gemm" if rows < DEQUANT_MIN_ROWS else "dequant+matmul"


def _dequant_matmul(x2: torch.Tensor, qweight, qzeros, scales) -> torch.Tensor:
    w_dtype = torch.float16 if x2.dtype == torch.float16 else torch.float32
    w = awq_dequantize(qweight, qzeros, scales, w_dtype)
    return torch.matmul(x2.to(w_dtype), w).to(x2.dtype)


def awq_linear(x: torch.Tensor, qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor,
               bias: torch.Tensor | None = None, path: str | None = None, version: str = "gemm",
               group_size: int | None = None) -> torch.Tensor:
    """x [..., K] -> [..., N] in x.dtype for weights of layout ``version`` (VERSIONS). For "gemm",
    ``path`` forces one of PATHS (default: by row count); "gemv" needs ``group_size`` (-1: per channel)."""
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        raise ValueError("x must be a tensor with at least one dimension [..., K]")
    if version not in VERSIONS:
        raise ValueError(f"unknown AWQ version {version!r}; choose from {VERSIONS}")
    if path is not None and (version != "gemm" or path not in PATHS):
        raise ValueError(f"unknown path {path!r} for version {version!r}; the GEMM layout's are {PATHS}")
    if version == "gemv" and group_size is None:
        raise ValueError("the GEMV layout does not store its group size: pass the checkpoint's group_size")
    layer = (checks.check_gemv_layout_weights(qweight, qzeros, scales, group_size) if version == "gemv"
             else checks.check_weights(qweight, qzeros, scales))
    x2 = x.reshape(-1, x.shape[-1])
    if x2.shape[0] == 0:
        return x.new_empty((*x.shape[:-1], layer.n))
    chosen = "gemv_layout" if version == "gemv" else path or choose_path(x2.shape[0])
    if chosen == "gemv_layout":
        y = awq_gemv_layout(x2, qweight, qzeros, scales, group_size)
    elif chosen == "gemv":
        y = awq_gemv(x2, qweight, qzeros, scales)
    elif chosen == "gemm":
        y = awq_gemm(x2, qweight, qzeros, scales)
    else:
        y = _dequant_matmul(x2, qweight, qzeros, scales)
    if bias is not None:
        y = y + bias.to(y.dtype)
    return y.reshape(*x.shape[:-1], y.shape[-1])
