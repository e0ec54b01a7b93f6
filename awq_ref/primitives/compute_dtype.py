"""The dtype that calibration forwards and evaluation run in, and what ``auto`` picks here.

bfloat16 halves the bytes every forward moves, but only some CPUs multiply it natively:
AVX-512 BF16 (``vdpbf16ps``) or AMX tiles, which oneDNN uses for torch's bf16 matmul.
Elsewhere (an AVX2-only CPU, or oneDNN held below AVX-512) torch emulates bf16 matmul with
conversions, and it is tens of times slower than float32. So ``auto`` means:

  * CUDA: the fastest dtype the GPU computes natively: bfloat16 on compute capability 8.0
    and newer (Ampere on: bf16 tensor cores), float16 below (Volta, Turing: fp16 tensor cores,
    no bf16), as AutoAWQ and llm-compressor run there. The search keeps its float32 master
    copy and float32 statistics and losses on every device;
  * CPU: bfloat16 only where the CPU's flags show a native bf16 path *and* a tiny timed
    probe (one bf16 and one float32 matmul of the same shape, best of a few runs, once per
    process) finds that bf16 is not emulated; otherwise float32. The probe separates two
    regimes far apart, not fine speeds: an emulated bf16 matmul (oneDNN held below AVX-512,
    e.g. ``ONEDNN_MAX_CPU_ISA=AVX2``) is tens of times slower than float32, a native one is
    faster, and on a busy machine within a small factor either way. So the bound sits between
    the regimes (``BF16_EMULATED_RATIO``), and the choice, hence the checkpoint's bytes, does
    not flip with the machine's load.

float16 is never chosen on the CPU: CPU float16 matmuls are slow, and it is not offered
explicitly (its range is too small for some models' hidden states); on a pre-Ampere GPU it is
what the hardware computes, and the statistics are summed in float32 anyway.
An explicit dtype always wins over ``auto``; the choice and the evidence for it are returned
as a ``DtypeChoice`` so that callers print it and record it with their results.
"""
from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass

import torch

COMPUTE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
AUTO = "auto"
CHOICES = (AUTO, "float32", "bfloat16")  # what a user may ask for; float16 only as CUDA's auto
CPU_PROBED = ("float32", "bfloat16")  # the two a CPU's auto chooses between
BF16_MIN_CAPABILITY = (8, 0)

PROBE_SHAPE = (128, 512, 512)  # M, K, N: big enough to reach the matmul kernel, small enough to be ~ms
PROBE_RUNS = 5
BF16_EMULATED_RATIO = 3.0      # bf16 this many times slower than float32 or more: emulated, not chosen


@dataclass(frozen=True)
class DtypeChoice:
    dtype: str                       # "float32" or "bfloat16" ("float16": CUDA below sm80)
    requested: str                   # "auto" or the explicit dtype
    reason: str                      # one line a person can check
    cpu_capability: str              # torch.backends.cpu.get_cpu_capability()
    probe_ms: dict | None = None     # {"float32": ms, "bfloat16": ms} when the probe ran

    @property
    def torch_dtype(self) -> torch.dtype:
        return COMPUTE_DTYPES[self.dtype]

    def to_json(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return f"{self.dtype} ({self.requested}: {self.reason})"


def cpu_has_native_bf16() -> bool:
    """The CPU's own flags: AVX-512 BF16 or AMX tiles (what oneDNN's fast bf16 kernels need)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def _best_ms(dtype: torch.dtype) -> float:
    m, k, n = PROBE_SHAPE
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=gen).to(dtype)
    b = torch.randn(k, n, generator=gen).to(dtype)
    a @ b  # warm-up: kernel selection, first-touch allocation
    best = float("inf")
    for _ in range(PROBE_RUNS):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def probe_matmul_ms() -> dict[str, float]:
    """Best-of-``PROBE_RUNS`` time of one ``PROBE_SHAPE`` matmul in each dtype, in ms, on one thread:
    a multi-threaded matmul on a loaded machine waits for its slowest thread, and one such stall in
    the float32 timing (measured: 0.37 ms idle, 14.5 ms under a 2-worker test run) can make emulated
    bf16 look native."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {name: round(_best_ms(COMPUTE_DTYPES[name]), 4) for name in CPU_PROBED}
    finally:
        torch.set_num_threads(threads)


def _cpu_choice() -> DtypeChoice:
    capability = torch.backends.cpu.get_cpu_capability()
    if not cpu_has_native_bf16():
        return DtypeChoice("float32", AUTO, f"CPU {capability} has no AVX-512 BF16 or AMX: bf16 is emulated",
                           capability)
    probe = probe_matmul_ms()
    ratio = probe["bfloat16"] / probe["float32"]
    fast = ratio < BF16_EMULATED_RATIO
    verdict = "native" if fast else f"emulated (>= {BF16_EMULATED_RATIO}x float32's time)"
    reason = (f"CPU {capability}, bf16 matmul {probe['bfloat16']:.3g} ms vs float32 {probe['float32']:.3g} ms "
              f"({ratio:.2f}x): {verdict}")
    return DtypeChoice("bfloat16" if fast else "float32", AUTO, reason, capability, probe)


def auto_choice(device: str = "cpu") -> DtypeChoice:
    """What ``auto`` means on ``device`` ("cpu", "cuda", "cuda:1", ...); measured once per process."""
    device = torch.device(device)
    return _auto_for(device.type, device.index)


def cuda_choice(name: str, capability: tuple[int, int]) -> DtypeChoice:
    """bfloat16 on sm80+, else float16 (both native on the tensor cores of their generation)."""
    bf16 = tuple(capability) >= BF16_MIN_CAPABILITY
    sm = f"sm{capability[0]}{capability[1]}"
    reason = f"CUDA {name} ({sm}): {'bf16' if bf16 else 'no bf16 below sm80, fp16'} native"
    return DtypeChoice("bfloat16" if bf16 else "float16", AUTO, reason, torch.backends.cpu.get_cpu_capability())


@functools.cache
def _auto_for(device_type: str, index: int | None = None) -> DtypeChoice:
    if device_type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device() if index is None else index)
        return cuda_choice(torch.cuda.get_device_name(device), torch.cuda.get_device_capability(device))
    return _cpu_choice()


def choose(requested: str, device: str = "cpu") -> DtypeChoice:
    """``requested`` ("auto", "float32" or "bfloat16") resolved, with the reason."""
    if requested == AUTO:
        return auto_choice(device)
    if requested not in CHOICES:
        raise ValueError(f"compute dtype must be one of {list(CHOICES)}, got {requested!r}")
    return DtypeChoice(requested, requested, "given explicitly", torch.backends.cpu.get_cpu_capability())


def machine_line() -> str:
    """One line for CI logs: what kind of CPU this is and what ``auto`` picks on it."""
    flags = {"avx512_bf16": torch.cpu._is_avx512_bf16_supported(), "amx": torch.cpu._is_amx_tile_supported()}
    have = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in flags.items())
    return f"cpu capability {torch.backends.cpu.get_cpu_capability()} ({have}); auto dtype: {auto_choice().describe()}"


if __name__ == "__main__":
    print(machine_line())
