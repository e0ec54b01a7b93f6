"""Kernel tests: Triton runs natively on CUDA or, here, under TRITON_INTERPRET=1 (set by the
root conftest before ``kernels`` is imported). Every test runs with kernel buffers poisoned
(NaN) so an output element a kernel never writes fails the property checks.

Options (``pytest tests/kernels``; also env vars for runs started from the repo root):
  --kernel-results PATH       where the benchmark records go (AWQ_KERNEL_RESULTS);
                              default <pytest basetemp>/kernel_results.json
  --kernel-baseline-write     rewrite kernels/baselines/<gpu>.json from this GPU run
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from awq_harness import kernels
from awq_harness.kernels import runtime


def pytest_addoption(parser):
    group = parser.getgroup("awq-kernels")
    group.addoption("--kernel-results", default=None, help="JSON file for kernel benchmark records")
    group.addoption("--kernel-baseline-write", action="store_true", default=False,
                    help="rewrite the per-GPU speed-up baseline from this run (GPU only)")


def _option(config, name: str, env: str, default=None):
    try:
        value = config.getoption(name)
    except ValueError:  # option not registered (conftest loaded late)
        value = None
    return value if value not in (None, False) else os.environ.get(env, default)


@pytest.fixture(scope="session", autouse=True)
def poisoned_buffers():
    """Session-wide (hypothesis forbids function-scoped fixtures around @given examples)."""
    with runtime.poisoned():
        yield


@pytest.fixture(scope="session", params=[pytest.param("cpu", id="interpreter"),
                                         pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)])
def triton_device(request) -> str:
    """Each kernel test runs twice: on the CPU interpreter (default run) and natively on a GPU
    (``pytest -m gpu``); the variant this machine cannot run is skipped."""
    if not kernels.triton_can_run(request.param):
        pytest.skip(f"Triton cannot run on {request.param} here (interpreter is CPU-only, "
                    "and only when TRITON_INTERPRET=1 was set before import)")
    return request.param


class KernelResults:
    def __init__(self) -> None:
        self.records: list[dict] = []  # one per (kernel, shape, M)
        self.decode: list[dict] = []  # end-to-end decode speed


@pytest.fixture(scope="session")
def dry_mode() -> None:
    """Dry-mode tests (the CPU stand-ins for GPU benchmarks) need the interpreter."""
    if not kernels.triton_can_run("cpu"):
        pytest.skip("dry mode runs on the CPU interpreter (TRITON_INTERPRET=1); a GPU runs the real thing")


@pytest.fixture(scope="session")
def kernel_results(request, tmp_path_factory):
    """Benchmark records of this session; written as JSON at the end of the session."""
    results = KernelResults()
    default = tmp_path_factory.getbasetemp() / "kernel_results.json"
    path = Path(_option(request.config, "--kernel-results", "AWQ_KERNEL_RESULTS", default))
    yield results
    if results.records or results.decode:
        from awq_harness.kernels.bench.records import write_results
        write_results(path, results.records, results.decode)
        print(f"\nkernel benchmark: {len(results.records)} records, {len(results.decode)} decode -> {path}")


@pytest.fixture(scope="session")
def write_baseline(request) -> bool:
    return bool(_option(request.config, "--kernel-baseline-write", "AWQ_KERNEL_BASELINE_WRITE", False))
