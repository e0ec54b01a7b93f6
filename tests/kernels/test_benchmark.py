"""Speed-up of the kernels over fp16 torch.matmul on real layer shapes (GPU), and the same
harness in dry mode on the CPU interpreter with tiny shapes (records, bands, JSON; no speed
claim). Records go to --kernel-results (see conftest.py); schema in kernels/bench/__init__.py."""
from __future__ import annotations

import math

import pytest

from kernels.bench import baselines
from kernels.bench.records import FIELDS, apply_baseline, send_to_report, write_results
from kernels.bench.runner import run_case
from kernels.bench.shapes import bench_cases

GPU_CASES = bench_cases(dry_run=False)
DRY_CASES = bench_cases(dry_run=True)
ROUNDS = {True: 2, False: 20}  # pytest-benchmark rounds: dry (interpreter) / GPU


def publish(record: dict, call, benchmark, kernel_results, dry_run: bool) -> None:
    """Time the call once more through pytest-benchmark and hand the record on."""
    benchmark.extra_info.update({k: v for k, v in record.items() if k != "threshold"})
    benchmark.pedantic(call, rounds=ROUNDS[dry_run], warmup_rounds=1, iterations=1)
    kernel_results.records.append(record)
    send_to_report(record)


@pytest.fixture(scope="session")
def gpu_baseline():
    import torch
    return baselines.load_baseline(baselines.baseline_path(torch.cuda.get_device_name()))


@pytest.fixture(scope="session")
def records_for_baseline(write_baseline):
    records: list[dict] = []
    yield records
    if write_baseline and records:
        device = records[0]["device"]
        baselines.write_baseline(baselines.baseline_path(device), device, records)


@pytest.mark.gpu
@pytest.mark.parametrize("case", GPU_CASES, ids=lambda c: c.key)
def test_gpu_speedup_within_baseline_band(case, benchmark, kernel_results, gpu_baseline,
                                          records_for_baseline, write_baseline):
    record, call = run_case(case, "cuda", dry_run=False, baseline=gpu_baseline)
    publish(record, call, benchmark, kernel_results, dry_run=False)
    if write_baseline:
        records_for_baseline.append(record)
        return
    if record["passed"] is None:
        pytest.skip(f"no baseline for {record['device']}: run with --kernel-baseline-write")
    band = record["threshold"]
    assert record["passed"], (f"{case.key}: speed-up {record['speedup']:.2f}x outside "
                              f"[{band['low']:.2f}, {band['high']:.2f}] (bound {record['roofline_bound']:.2f}x)")


def _check_complete(record: dict) -> None:
    assert tuple(record) == FIELDS
    missing = [name for name in FIELDS if record[name] is None]
    assert not missing, f"fields a GPU run fills are empty: {missing}"
    for name in ("time_ms", "fp16_time_ms", "speedup", "achieved_gbps", "achieved_tflops"):
        assert math.isfinite(record[name]) and record[name] > 0, name
    assert 1.0 < record["roofline_bound"] < 16 / 4, "bytes bound of 4-bit weights vs fp16"


@pytest.mark.parametrize("case", DRY_CASES, ids=lambda c: c.key)
def test_dry_run_record(case, benchmark, kernel_results, dry_mode, tmp_path):
    """Each record, judged against a baseline written from itself (logic check only)."""
    record, call = run_case(case, "cpu", dry_run=True, baseline=None)
    assert record["threshold"] is None and record["passed"] is None
    baselines.write_baseline(tmp_path / "dry.json", record["device"], [record])
    record = apply_baseline(record, baselines.load_baseline(tmp_path / "dry.json"))
    _check_complete(record)
    assert record["passed"] is True and record["dry_run"] is True
    publish(record, call, benchmark, kernel_results, dry_run=True)


def test_band_fails_outside_both_edges(dry_mode):
    record, _ = run_case(DRY_CASES[0], "cpu", dry_run=True, baseline=None)
    for factor, expected in [(1.0, True), (1 / 0.95, True), (1 / 0.85, False), (1 / 1.15, False)]:
        baseline = {"schema": baselines.SCHEMA, "device": "x", "band": 0.10,
                    "speedups": {DRY_CASES[0].key: record["speedup"] * factor}}
        assert apply_baseline(record, baseline)["passed"] is expected, factor
    assert apply_baseline(record, {**baseline, "speedups": {}})["passed"] is None


def test_results_json_has_every_field(tmp_path, dry_mode):
    import json
    record, _ = run_case(DRY_CASES[-1], "cpu", dry_run=True, baseline=None)
    baselines.write_baseline(tmp_path / "b.json", record["device"], [record])
    write_results(tmp_path / "r.json", [apply_baseline(record, baselines.load_baseline(tmp_path / "b.json"))])
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["schema"] == 1 and len(data["records"]) == 1
    _check_complete(data["records"][0])


def test_gpu_cases_cover_the_issue_matrix():
    shapes = {c.shape.split(".")[0] for c in GPU_CASES}
    assert shapes == {"llama-2-7b", "llama-3-8b", "llama-2-70b"}
    assert sorted({c.m for c in GPU_CASES}) == [1, 4, 16, 64, 256, 1024]
    assert {c.kernel for c in GPU_CASES if c.m == 1} == {"gemv", "gemm", "awq_linear"}


def test_roofline_bound_matches_the_issue():
    from kernels.bench import roofline
    weights_only = 16 / (4 + 16 / 128 + 4 / 128)
    assert round(weights_only, 3) == 3.850
    assert roofline.speedup_bound(1, 8192, 8192, 128) == pytest.approx(3.847, abs=1e-3)
    assert roofline.speedup_bound(1, 4096, 4096, 64) < roofline.speedup_bound(1, 4096, 4096, 128)
