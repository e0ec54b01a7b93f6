"""The kernels compile for real GPUs (sm_80 .. sm_90) on this CPU: no spill, shared memory within
the chip's limit, tensor-core MMA on the fp16/bf16 GEMM paths; a configuration made to exceed
shared memory is reported, not passed.

The default run compiles the representative subset (``compile_check.subset_cases``) once per
session; ``-m slow`` compiles the full matrix (every listed configuration x architecture x
dtype x group size x benchmark layer), as ``awq-harness kernels compile-check`` does."""
from __future__ import annotations

import time

import pytest

from awq_harness.kernels import compile_check, configs
from awq_harness.kernels.compile_check import Result
from awq_harness.reports.collect import record

pytestmark = pytest.mark.xdist_group("compile_check")  # one worker compiles the subset once


@pytest.fixture(scope="session")
def subset() -> list[Result]:
    start = time.perf_counter()
    results = compile_check.run(compile_check.subset_cases())
    seconds = time.perf_counter() - start
    print(f"\ncompile-check subset: {len(results)} compilations in {seconds:.1f} s\n{compile_check.table(results)}")
    for row in compile_check.as_json(results):
        record("compile_check", row)
    return results


def _matrix(results: list[Result]) -> list[Result]:
    return [r for r in results if not r.control]


def test_subset_covers_every_kernel_dtype_and_bucket(subset):
    matrix = _matrix(subset)
    assert {(r.kernel, r.dtype) for r in matrix} == {(k, d) for k in (*configs.KERNELS, "dequantize")
                                                     for d in compile_check.DTYPES}
    gemm_buckets = {r.config["block_m"] for r in matrix if r.kernel == "gemm"}
    assert len(gemm_buckets) >= 3, gemm_buckets


def test_every_subset_case_compiles_within_the_limits(subset):
    failures = compile_check.verdict(subset)
    assert not failures, "\n".join(failures)
    for r in _matrix(subset):
        assert r.registers and 0 < r.registers <= 255 and r.spill_bytes == 0, r
        assert 0 < r.shared_bytes <= r.shared_limit, r


def test_gemm_paths_use_tensor_cores(subset):
    gemm = [r for r in _matrix(subset) if r.kernel == "gemm"]
    assert gemm and all(r.mma for r in gemm)
    hopper_wide = [r for r in gemm if r.arch == "sm_90" and r.config["block_m"] >= 64]
    assert hopper_wide and all(r.mma == "wgmma" for r in hopper_wide), "Hopper's wide tiles use wgmma"


def test_negative_control_is_reported_not_passed(subset):
    (control,) = [r for r in subset if r.control]
    assert not control.ok and control.shared_bytes > control.shared_limit
    assert any("shared memory" in e for e in control.errors)
    assert not [line for line in compile_check.verdict(subset) if "negative control" in line]


def _result(**changes) -> Result:
    base = dict(arch="sm_86", kernel="gemm", dtype="float16", config={}, registers=128, spill_bytes=0,
                shared_bytes=1024, shared_limit=configs.ARCHS["sm_86"].shared_bytes, mma="mma.sync",
                mma_required=True)
    return Result(**{**base, **changes})


@pytest.mark.parametrize("changes,reason", [
    ({"spill_bytes": 8}, "spilled"),
    ({"shared_bytes": configs.ARCHS["sm_86"].shared_bytes + 1}, "shared memory"),
    ({"mma": None}, "without tensor-core MMA"),
    ({"registers": 255}, "registers x"),  # 255 x 16 warps x 32 threads > 65536
])
def test_judge_fails_each_limit(changes, reason):
    errors = compile_check.judge(_result(**changes), configs.ARCHS["sm_86"], num_warps=16)
    assert len(errors) == 1 and reason in errors[0], errors


def test_judge_passes_a_clean_case_and_fp32_paths_need_no_mma():
    arch = configs.ARCHS["sm_86"]
    assert compile_check.judge(_result(), arch, 4) == []
    assert compile_check.judge(_result(kernel="gemv", mma=None, mma_required=False), arch, 4) == []


def test_mma_kind_reads_the_ptx():
    assert compile_check.mma_kind("wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16") == "wgmma"
    assert compile_check.mma_kind("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32") == "mma.sync"
    assert compile_check.mma_kind("fma.rn.f32") is None


def test_full_matrix_lists_every_config_entry():
    """Every entry of every architecture's lists is in the full matrix (fixed for some layer)."""
    keys = set(compile_check.cases())
    layer = configs.LayerShape(8192, 28672, 128)  # wide enough that no entry is clamped but BLOCK_K
    for arch, table in configs.TABLES.items():
        for kernel, buckets in table.items():
            for top, entries in buckets:
                m = min(top, 1024)
                for c in entries:
                    case = compile_check.Case(arch, kernel, "float16", configs.for_layer(c, kernel, m, layer),
                                              m, layer.n, layer.k, 128)
                    assert case.key() in keys, case


@pytest.mark.slow
def test_full_matrix_compiles_within_the_limits():
    results = compile_check.run(compile_check.cases())
    failures = compile_check.verdict(results)
    assert not failures, "\n".join(failures)
