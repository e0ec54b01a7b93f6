"""Speed-up of the kernels over fp16 torch.matmul on real layer shapes (GPU), and the same
harness in dry mode on the CPU interpreter with tiny shapes (records, bands, JSON; no speed
claim). Records go to the report being collected and to --kernel-results (see conftest.py), a
results file of the report's schema; record fields in kernels/bench/__init__.py.

On a GPU every case must give a complete record, and its speed-up must stay inside the band
of this GPU's baseline (baselines/<slug>.json, ``reports.baselines``), judged by the report's
own comparison (``reports.compare``). A GPU without a baseline fails until one is written on
purpose (--kernel-baseline-write). The judging (``band_verdict``) and the per-GPU lookup are
tested here on the CPU with synthetic baselines, so the GPU comparison is not first exercised
on the day a baseline lands."""
from __future__ import annotations

import math

import pytest

from awq_harness.kernels.bench.records import FIELDS, SECTION, record_key, send_to_report, write_results
from awq_harness.kernels.bench.runner import run_case
from awq_harness.kernels.bench.shapes import bench_cases
from awq_harness.reports.baselines import baseline_path, load_baseline, write_section
from awq_harness.reports.collect import check_record, collecting
from awq_harness.reports.compare import KERNEL_KEY, STALE_KERNEL_BASELINE, Thresholds, compare, key_of
from awq_harness.reports.render import render_report
from awq_harness.reports.schema import Results, build_document, load_results

GPU_CASES = bench_cases(dry_run=False)
DRY_CASES = bench_cases(dry_run=True)
ROUNDS = {True: 2, False: 20}  # pytest-benchmark rounds: dry (interpreter) / GPU
THRESHOLDS = Thresholds()  # the report's own: the GPU run is judged as its report judges it


def publish(record: dict, call, benchmark, kernel_results, dry_run: bool) -> None:
    """Time the call once more through pytest-benchmark and hand the record on."""
    benchmark.extra_info.update(record)
    benchmark.pedantic(call, rounds=ROUNDS[dry_run], warmup_rounds=1, iterations=1)
    kernel_results.records.append(record)
    send_to_report(record)


def as_run(records: list[dict]) -> Results:
    """Records as a run of their own, for ``reports.compare``."""
    run = {"date": "", "git_commit": None, "host": "", "device": records[0]["device"], "versions": {}}
    document = build_document(run, [], {SECTION: records})
    return Results("<this session>", document["run"], document["tests"], document["sections"])


def band_verdict(record: dict, baseline: Results | None, thresholds: Thresholds = THRESHOLDS) -> str | None:
    """Why ``record`` fails its GPU's baseline, or None. No baseline for this GPU, or none for this
    case, fails: nothing would ever be judged. Outside the band fails in either direction."""
    key, device = record_key(record), record["device"]
    if baseline is None:
        return (f"{key}: no baseline for {device} ({baseline_path(device)}); write one with "
                "--kernel-baseline-write, review it and commit it")
    comparison = compare(as_run([record]), baseline, thresholds)
    if comparison.added:
        return f"{key}: the {device} baseline has no entry for it; rewrite it with --kernel-baseline-write"
    for row in comparison.regressions:
        return (f"{key}: {row.kind}: speed-up {row.current}x against {row.baseline}x ({row.change}), outside "
                f"the ±{thresholds.speed_band:.0%} band (bound {record['bound']:.2f}x)")
    return None


@pytest.fixture(scope="session")
def gpu_baseline():
    import torch
    return load_baseline(torch.cuda.get_device_name())


@pytest.fixture(scope="session")
def records_for_baseline(write_baseline):
    """With --kernel-baseline-write, this GPU's kernel_speedups baseline is rewritten from the
    session's records (its other sections kept). Run it without xdist: one process, one file."""
    records: list[dict] = []
    yield records
    if write_baseline and records:
        path = write_section(records[0]["device"], SECTION, records)
        print(f"\nkernel baseline: {len(records)} records -> {path}; review the diff, then commit it")


@pytest.mark.gpu
@pytest.mark.parametrize("case", GPU_CASES, ids=lambda c: c.key)
def test_gpu_speedup_within_baseline_band(case, benchmark, kernel_results, gpu_baseline,
                                          records_for_baseline, write_baseline):
    record, call = run_case(case, "cuda", dry_run=False)
    publish(record, call, benchmark, kernel_results, dry_run=False)
    _check_complete(record)
    assert record["dry_run"] is False
    if write_baseline:
        records_for_baseline.append(record)
        return
    failure = band_verdict(record, gpu_baseline)
    assert failure is None, failure


def _check_complete(record: dict) -> None:
    """Every field filled and plausible, and a valid entry of the report's section."""
    assert tuple(record) == FIELDS
    missing = [name for name in FIELDS if record[name] is None]
    assert not missing, f"fields a run fills are empty: {missing}"
    for name in ("time_ms", "ref_time_ms", "speedup", "gbps", "tflops"):
        assert math.isfinite(record[name]) and record[name] > 0, name
    assert 1.0 < record["bound"] < 16 / 4, "bytes bound of 4-bit weights vs fp16"
    assert check_record(SECTION, record) == record


@pytest.mark.parametrize("case", DRY_CASES, ids=lambda c: c.key)
def test_dry_run_record(case, benchmark, kernel_results, dry_mode):
    """Each record is complete; being a dry run, the report never compares it with a baseline."""
    record, call = run_case(case, "cpu", dry_run=True)
    _check_complete(record)
    assert record["dry_run"] is True
    assert band_verdict(record, as_run([{**record, "speedup": record["speedup"] * 3}])) is None
    publish(record, call, benchmark, kernel_results, dry_run=True)


@pytest.fixture(scope="module")
def measured(dry_mode) -> dict:
    """A dry record passed off as a measured one, to exercise the comparison on the CPU."""
    record, _ = run_case(DRY_CASES[0], "cpu", dry_run=True)
    return {**record, "dry_run": False, "device": "Synthetic GPU"}


def synthetic_baseline(tmp_path, records: list[dict]) -> Results:
    write_section("Synthetic GPU", SECTION, records, tmp_path)
    return load_baseline("Synthetic GPU", tmp_path)


@pytest.mark.parametrize("factor,expected", [
    (1.0, None), (1 / 0.95, None), (1 / 1.05, None),  # inside the band
    (1 / 0.85, "kernel speed-up"),                     # slower than baseline * 0.9
    (1 / 1.15, STALE_KERNEL_BASELINE),                 # faster than baseline * 1.1
])
def test_band_verdict_inside_below_and_above(tmp_path, measured, factor, expected):
    baseline = synthetic_baseline(tmp_path, [{**measured, "speedup": measured["speedup"] * factor}])
    verdict = band_verdict(measured, baseline)
    if expected is None:
        assert verdict is None
    else:
        assert verdict.startswith(f"{record_key(measured)}: {expected}:") and "outside" in verdict, verdict


def test_band_verdict_fails_without_a_baseline_or_its_case(tmp_path, measured):
    assert "--kernel-baseline-write" in band_verdict(measured, None)
    other = {**measured, "shape": "dry.other"}
    assert "no entry" in band_verdict(measured, synthetic_baseline(tmp_path, [other]))


def test_baseline_is_looked_up_for_this_gpu_only(tmp_path, measured):
    write_section("NVIDIA H200", SECTION, [measured], tmp_path)
    assert (tmp_path / "nvidia-h200.json").is_file()
    found = load_baseline("NVIDIA H200", tmp_path)
    assert found.run["device"] == "NVIDIA H200" and found.sections[SECTION] == [measured]
    assert load_baseline("NVIDIA A10", tmp_path) is None


def test_kernel_record_round_trips_through_reports_into_a_comparison_row(tmp_path, measured):
    """Recorded, written as a results file, read back and compared: one regression row that
    names the case, against a baseline whose speed-up is 25% higher."""
    with collecting() as collector:
        send_to_report(measured)
    assert collector.sections[SECTION] == [measured]
    write_results(tmp_path / "r.json", collector.sections[SECTION])
    baseline = synthetic_baseline(tmp_path, [{**measured, "speedup": measured["speedup"] * 1.25}])
    current = load_results(tmp_path / "r.json")
    (row,) = compare(current, baseline).regressions
    assert (row.kind, row.section, row.key) == ("kernel speed-up", SECTION, key_of(measured, KERNEL_KEY))
    assert row.subject.startswith(f"kernel {measured['kernel']}, shape {measured['shape']}, batch 1")
    report = render_report([current], baseline)
    assert report.regressed and row.subject in report.html


def test_results_json_has_every_field(tmp_path, dry_mode):
    record, _ = run_case(DRY_CASES[-1], "cpu", dry_run=True)
    decode = {"model": "tiny", "speedup": 1.5, "tokens_per_s": 3.0, "fp16_tokens_per_s": 2.0}
    write_results(tmp_path / "r.json", [record], [decode])
    results = load_results(tmp_path / "r.json")
    (written,) = results.sections[SECTION]
    _check_complete(written)
    assert results.sections["decode_speed"] == [decode]


def test_gpu_cases_cover_the_issue_matrix():
    shapes = {c.shape.split(".")[0] for c in GPU_CASES}
    assert shapes == {"llama-2-7b", "llama-3-8b", "llama-2-70b"}
    assert sorted({c.m for c in GPU_CASES}) == [1, 4, 16, 64, 256, 1024]
    assert {c.kernel for c in GPU_CASES if c.m == 1} == {"gemv", "gemm", "awq_linear"}


def test_roofline_bound_matches_the_issue():
    from awq_harness.kernels.bench import roofline
    weights_only = 16 / (4 + 16 / 128 + 4 / 128)
    assert round(weights_only, 3) == 3.850
    assert roofline.speedup_bound(1, 8192, 8192, 128) == pytest.approx(3.847, abs=1e-3)
    assert roofline.speedup_bound(1, 4096, 4096, 64) < roofline.speedup_bound(1, 4096, 4096, 128)
