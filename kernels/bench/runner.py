"""Run one benchmark case: random AWQ tensors of the case's shape, the kernel and fp16
torch.matmul on the same x, both timed the same way, into one record."""
from __future__ import annotations

import torch

from awq_harness.kernels import awq_gemm, awq_gemv, awq_linear, choose_path
from awq_harness.kernels.bench.records import make_record
from awq_harness.kernels.bench.shapes import BenchCase
from awq_harness.kernels.bench.timing import median_ms

KERNEL_FNS = {"gemv": awq_gemv, "gemm": awq_gemm, "awq_linear": awq_linear}


def random_layer(case: BenchCase, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Valid AWQ GEMM tensors with random codes and zeros (any int32 is 8 valid nibbles)."""
    gen = torch.Generator().manual_seed(seed)
    groups, words = case.k // case.group_size, case.n // 8
    word = lambda rows: torch.randint(-2**31, 2**31, (rows, words), generator=gen, dtype=torch.int64)  # noqa: E731
    return {
        "qweight": word(case.k).to(torch.int32).to(device),
        "qzeros": word(groups).to(torch.int32).to(device),
        "scales": (torch.rand(groups, case.n, generator=gen) * 0.01 + 1e-3).half().to(device),
    }


def device_name(device: str, dry_run: bool) -> str:
    if dry_run:
        return "cpu (TRITON_INTERPRET dry run)"
    return torch.cuda.get_device_name(torch.device(device))


def kernel_call(case: BenchCase, x: torch.Tensor, t: dict[str, torch.Tensor]):
    fn = KERNEL_FNS[case.kernel]
    return lambda: fn(x, t["qweight"], t["qzeros"], t["scales"])


def synchronized(fn, device: str):
    """fn followed by a device sync, for host-clock timers (pytest-benchmark)."""
    if torch.device(device).type != "cuda":
        return fn
    return lambda: (fn(), torch.cuda.synchronize(device))


def run_case(case: BenchCase, device: str, dry_run: bool):
    """(record, the timed kernel call) for one case."""
    t = random_layer(case, device)
    x = torch.randn(case.m, case.k, generator=torch.Generator().manual_seed(1)).half().to(device)
    w16 = torch.randn(case.k, case.n, generator=torch.Generator().manual_seed(2)).half().to(device)
    call = kernel_call(case, x, t)
    time_ms, timer = median_ms(call, dry_run)
    ref_time_ms, _ = median_ms(lambda: torch.matmul(x, w16), dry_run)
    path = choose_path(case.m) if case.kernel == "awq_linear" else case.kernel
    record = make_record(case, path, time_ms, ref_time_ms, device_name(device, dry_run), dry_run, timer)
    return record, synchronized(call, device)
