"""Median time of a callable: do_bench on a GPU (CUDA events, warm-up, L2 flush between
runs), a few perf_counter runs in dry mode (the interpreter: no GPU driver for do_bench)."""
from __future__ import annotations

import statistics
import time
from typing import Callable

DRY_REPS = 3


def median_ms(fn: Callable[[], object], dry_run: bool) -> tuple[float, str]:
    if not dry_run:
        import triton.testing
        return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")), \
            "triton.testing.do_bench"
    fn()  # warm-up (first launch also builds the interpreted kernel)
    runs = []
    for _ in range(DRY_REPS):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1e3)
    return statistics.median(runs), "perf_counter"
