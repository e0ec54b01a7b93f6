"""Triton kernels for AWQ checkpoints in AutoAWQ's GEMM and GEMV layouts (``version: "gemm"|"gemv"``).

    awq_dequantize(qweight, qzeros, scales, dtype)  -> W_hat [K, N]      (bit-exact)
    awq_gemm(x, qweight, qzeros, scales)            -> x @ W_hat [M, N]  (tl.dot, fp32 accumulation)
    awq_gemv(x, qweight, qzeros, scales)            -> x @ W_hat [M, N]  (small M, fp32 FMA)
    awq_linear(x, qweight, qzeros, scales, bias)    -> picks one of the above by batch size
    awq_gemv_layout(x, qweight, qzeros, scales, G)  -> x @ W_hat for AutoAWQ's GEMV layout (decode)
    awq_linear(..., version="gemv", group_size=G)   -> the GEMV layout's kernel

Launch configurations: ``kernels.configs`` (per-architecture lists), ``kernels.tuning`` (the
pick on a GPU), ``kernels.compile_check`` (every listed configuration compiled for sm_80..sm_90
on the CPU: ``awq-harness kernels compile-check``).

Layout ``awq_ref.formats.awq_gemm`` (the kernels take its nibble order and shapes from there):
qweight [K, N/8] int32, qzeros [K/G, N/8] int32, scales [K/G, N] fp16/bf16/fp32; nibble i of a
word holds column 8j + ORDER[i], ORDER = (0,2,4,6,1,3,5,7).
The group size G is read off the shapes (G = K / scales.shape[0]; one row of scales = per
channel). Every wrapper raises ValueError for input it cannot handle.

Triton runs on a CUDA device, or on the CPU when ``TRITON_INTERPRET=1`` was set before this
package was imported (the interpreter decides at ``@triton.jit`` time). The oracle for all
of these kernels is ``awq_ref`` (tests/kernels), never another kernel.

Tests: ``pytest tests/kernels`` (CPU, interpreter: properties, mutations, benchmark dry run);
``pytest tests/kernels -m gpu`` (the same properties natively, benchmarks, end-to-end model).
Benchmark record schema: ``kernels.bench``.

This package is importable only as ``kernels`` from this repository; it is unrelated to the
PyPI distribution of the same name, which this project does not install.
"""
from awq_harness.kernels.checks import supported
from awq_harness.kernels.dequant import awq_dequantize
from awq_harness.kernels.dispatch import awq_linear, choose_path
from awq_harness.kernels.gemm import awq_gemm
from awq_harness.kernels.gemv import awq_gemv
from awq_harness.kernels.gemv_layout import awq_gemv_layout
from awq_harness.kernels.runtime import INTERPRETED, triton_can_run

__all__ = ["INTERPRETED", "triton_can_run", "supported", "awq_dequantize", "awq_gemm", "awq_gemv",
           "awq_gemv_layout", "awq_linear", "choose_path"]
