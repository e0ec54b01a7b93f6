"""Speed-up of the kernels over fp16 torch.matmul on real layer shapes (GPU), and the same
harness in dry mode on the CPU interpreter with tiny shapes (records, bands, JSON; no speed
claim). Records go to --kernel-results (see conftest.py); schema in kernels/bench/__init__.py.

On a GPU every case must give a complete record; its speed-up is judged against a band only
where kernels/baselines/ holds a baseline for that GPU (none is committed yet). The judging
(``band_verdict``) and the per-GPU lookup (``baseline_for``) are tested here on the CPU with
synthetic baselines, so the GPU comparison is not first exercised on the day a baseline lands."""
from __future__ import annotations

import math

import pytest

from kernels.bench import baselines
from kernels.bench.records import FIELDS, apply_baseline, record_key, send_to_report, write_results
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


def baseline_for(device: str, directory=baselines.BASELINE_DIR) -> dict | None:
    """The committed baseline of this GPU model, or None when it has none."""
    return baselines.load_baseline(baselines.baseline_path(device, directory))


def band_verdict(record: dict, baseline: dict | None) -> str | None:
    """Why ``record`` fails its GPU's baseline, or None. No baseline for the GPU: nothing to
    judge. A baseline without this case is stale (a case was added) and fails."""
    if baseline is None:
        return None
    key = record_key(record)
    band = record["threshold"]
    if band is None:
        return f"{key}: the {baseline['device']} baseline has no entry for it; rewrite it with --kernel-baseline-write"
    if not record["passed"]:
        return (f"{key}: speed-up {record['speedup']:.2f}x outside [{band['low']:.2f}, {band['high']:.2f}] "
                f"(bound {record['roofline_bound']:.2f}x)")
    return None


@pytest.fixture(scope="session")
def gpu_baseline():
    import torch
    return baseline_for(torch.cuda.get_device_name())


@pytest.fixture(scope="session")
def records_for_baseline(write_baseline):
    records: list[dict] = []
    yield records
    if write_baseline and records:
        device = records[0]["device"]
        baselines.write_baseline(baselines.baseline_path(device), device, records)


@pytest.mark.gpu
@pytest.mark.parametrize("case", GPU_CASES, ids=lambda c: c.key)
def test_gpu_speedup_record_and_baseline_band(case, benchmark, kernel_results, gpu_baseline,
                                              records_for_baseline, write_baseline):
    record, call = run_case(case, "cuda", dry_run=False, baseline=gpu_baseline)
    publish(record, call, benchmark, kernel_results, dry_run=False)
    _check_complete(record, judged=record["threshold"] is not None)
    if write_baseline:
        records_for_baseline.append(record)
        return
    failure = band_verdict(record, gpu_baseline)
    assert failure is None, failure


def _check_complete(record: dict, judged: bool = True) -> None:
    """Every field filled and plausible; ``judged`` False: no baseline, so no band or verdict."""
    assert tuple(record) == FIELDS
    unjudged = () if judged else ("threshold", "passed")
    missing = [name for name in FIELDS if record[name] is None and name not in unjudged]
    assert not missing, f"fields a GPU run fills are empty: {missing}"
    assert judged or (record["threshold"], record["passed"]) == (None, None)
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


def test_band_verdict_judges_only_gpus_with_a_baseline(dry_mode):
    """band_verdict on a dry record and synthetic baselines: no baseline passes unjudged, inside
    the band passes, outside it or missing the case fails with a message naming the case."""
    record, _ = run_case(DRY_CASES[0], "cpu", dry_run=True, baseline=None)
    key = record_key(record)
    assert band_verdict(record, None) is None

    def synthetic(speedups):
        return {"schema": baselines.SCHEMA, "device": "Synthetic GPU", "band": 0.10, "speedups": speedups}
    inside = synthetic({key: record["speedup"]})
    assert band_verdict(apply_baseline(record, inside), inside) is None
    slower = synthetic({key: record["speedup"] / 0.8})
    verdict = band_verdict(apply_baseline(record, slower), slower)
    assert verdict.startswith(f"{key}: speed-up") and "outside" in verdict
    stale = synthetic({"other|case|M=1": 1.0})
    assert "no entry" in band_verdict(apply_baseline(record, stale), stale)


def test_baseline_is_looked_up_for_this_gpu_only(tmp_path, dry_mode):
    record, _ = run_case(DRY_CASES[0], "cpu", dry_run=True, baseline=None)
    baselines.write_baseline(baselines.baseline_path("NVIDIA H200", tmp_path), "NVIDIA H200", [record])
    found = baseline_for("NVIDIA H200", tmp_path)
    assert found["device"] == "NVIDIA H200" and found["speedups"] == {record_key(record): record["speedup"]}
    assert baseline_for("NVIDIA A10", tmp_path) is None


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
