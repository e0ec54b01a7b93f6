"""Benchmark records (schema in kernels/bench/__init__.py) and where they go: a results file
of their own and the regression report (``reports.collect``, the one way bench results reach it)."""
from __future__ import annotations

import json
from pathlib import Path

from kernels.bench import baselines, roofline
from kernels.bench.shapes import BenchCase
from reports.collect import record as report_record

SCHEMA = 1
FIELDS = ("kernel", "path", "shape", "M", "N", "K", "group_size", "dtype", "time_ms", "fp16_time_ms",
          "speedup", "achieved_gbps", "achieved_tflops", "roofline_bound", "threshold", "passed",
          "device", "dry_run", "timer")


def make_record(case: BenchCase, path: str, time_ms: float, fp16_time_ms: float, device: str,
                dry_run: bool, timer: str, baseline: dict | None) -> dict:
    seconds = time_ms / 1e3
    speedup = fp16_time_ms / time_ms
    record = {
        "kernel": case.kernel, "path": path, "shape": case.shape,
        "M": case.m, "N": case.n, "K": case.k, "group_size": case.group_size, "dtype": "float16",
        "time_ms": time_ms, "fp16_time_ms": fp16_time_ms, "speedup": speedup,
        "achieved_gbps": roofline.awq_bytes(case.m, case.k, case.n, case.group_size) / seconds / 1e9,
        "achieved_tflops": roofline.flops(case.m, case.k, case.n) / seconds / 1e12,
        "roofline_bound": roofline.speedup_bound(case.m, case.k, case.n, case.group_size),
        "threshold": None, "passed": None,
        "device": device, "dry_run": dry_run, "timer": timer,
    }
    return apply_baseline(record, baseline)


def record_key(record: dict) -> str:
    return f"{record['kernel']}|{record['shape']}|M={record['M']}"


def apply_baseline(record: dict, baseline: dict | None) -> dict:
    """A copy of ``record`` with threshold and passed judged against ``baseline``."""
    band = baselines.threshold(baseline, record_key(record))
    return {**record, "threshold": band, "passed": baselines.within(record["speedup"], band)}


def write_results(path: Path, records: list[dict], decode: list[dict] | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"schema": SCHEMA, "records": records, "decode": decode or []}
    path.write_text(json.dumps(data, indent=1) + "\n")


def report_payload(record: dict) -> dict:
    """The record in the shape of the report's ``kernel_speedups`` section."""
    return {"kernel": record["kernel"], "shape": record["shape"], "batch": record["M"],
            "speedup": record["speedup"], "bound": record["roofline_bound"],
            "group_size": record["group_size"], "time_ms": record["time_ms"],
            "ref_time_ms": record["fp16_time_ms"], "gbps": record["achieved_gbps"],
            "tflops": record["achieved_tflops"], "dry_run": record["dry_run"]}


def send_to_report(record: dict) -> None:
    """Hand the record to the regression report (kept only while a results file is being collected)."""
    report_record("kernel_speedups", report_payload(record))
