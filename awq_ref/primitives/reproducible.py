"""Pinned numerics: one code path on every x86-64 CPU, for outputs promised bit for bit.

Three libraries under torch choose their kernels by the CPU they find, and those kernels
round differently (a wider vector changes the order of a reduction; FMA skips a rounding):
a calibrated method then moves an argmin in the AWQ grid, or a GPTQ update, and the bytes
of a checkpoint depend on the machine that wrote it. The pin makes every CPU take the same
path:

  ATEN_CPU_CAPABILITY=avx2     ATen's own kernels (reductions, softmax, norms, elementwise)
                               as compiled for AVX2, not the AVX-512 copies (its baseline copies
                               draw torch.randn differently, so even the float weights would move);
  MKL_CBWR=COMPATIBLE          MKL's BLAS and LAPACK (every float32 matmul, GPTQ's Cholesky):
                               its SSE2 branch without approximate reciprocals, the branch MKL
                               documents as reproducible on Intel and non-Intel CPUs alike;
  ONEDNN_MAX_CPU_ISA=AVX2      oneDNN (bfloat16 matmuls and convolutions): not on the float32
                               paths the goldens take today, pinned so none can slip in;
  OMP_NUM_THREADS=MKL_NUM_THREADS=1 and ``torch.set_num_threads(1)``: sums split over threads
                               are added in a thread-count-dependent order;
  ``torch.set_float32_matmul_precision("highest")``: otherwise float32 matmuls may be run in
                               reduced precision.

The pin is not yet complete across vendors: one calibrated golden (Phi-3 AWQ) still rebuilds a few
codes apart on AMD than on Intel (``tests/golden/test_goldens.py`` ``VENDOR_DRIFT``).

The variables are read when the libraries load, so they must be in the environment before
torch is imported: ``pinned_environ()`` is the environment for a child process, and
``rerun_pinned()`` restarts the current command under it. Inside, ``pinned()`` sets the
in-process settings and refuses to run when the environment is not pinned.
"""
from __future__ import annotations

import contextlib
import os
import sys

import torch

PIN = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
ATEN_PINNED_CAPABILITY = "AVX2"  # what torch.backends.cpu.get_cpu_capability() reports under the pin
THREADS = 1
MATMUL_PRECISION = "highest"


class NotPinnedError(RuntimeError):
    """Raised when bit-exact work is asked of a process whose numerics are not pinned."""


def pinned_environ(base: dict | None = None) -> dict:
    """``base`` (default: this process's environment) with the pin applied."""
    return {**(os.environ if base is None else base), **PIN}


def unpinned_reasons() -> list[str]:
    """What keeps this process off the pinned path (empty when it is on it)."""
    reasons = [f"{k}={os.environ.get(k)!r} (pin: {v!r})" for k, v in PIN.items() if os.environ.get(k) != v]
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != ATEN_PINNED_CAPABILITY:
        reasons.append(f"torch runs ATen's {capability} kernels (pin: {ATEN_PINNED_CAPABILITY})")
    return reasons


def is_pinned() -> bool:
    return not unpinned_reasons()


def describe() -> dict:
    """The pin as recorded next to pinned outputs (golden manifests)."""
    return {"environment": dict(PIN), "torch_threads": THREADS, "float32_matmul_precision": MATMUL_PRECISION,
            "aten_cpu_capability": ATEN_PINNED_CAPABILITY}


@contextlib.contextmanager
def pinned(what: str = "this build"):
    """Run the body on the pinned path (threads and matmul precision set here, restored after)."""
    reasons = unpinned_reasons()
    if reasons:
        raise NotPinnedError(f"{what} must run with pinned numerics (awq_ref.primitives.reproducible): "
                             + "; ".join(reasons))
    threads, precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    torch.set_num_threads(THREADS)
    torch.set_float32_matmul_precision(MATMUL_PRECISION)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision(precision)


def rerun_pinned() -> None:
    """Replace this process by the same command under the pin, unless it already runs pinned."""
    if is_pinned():
        return
    if all(os.environ.get(k) == v for k, v in PIN.items()):  # restarted once already: torch ignored the pin
        raise NotPinnedError("pinned numerics requested but not in effect: " + "; ".join(unpinned_reasons()))
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], pinned_environ())
