"""Benchmark records: each one is an entry of the regression report's ``kernel_speedups``
section (fields in kernels/bench/__init__.py), so a kernel record needs no translation to be
reported, compared with a baseline (``reports.compare``) or written to a baseline.

A record goes to the report being collected with ``send_to_report`` (``reports.collect``); a
session's records are also written as a results file of the same schema (``write_results``,
through ``reports.session``), which ``awq-harness report`` reads like any other."""
from __future__ import annotations

from pathlib import Path

from awq_harness.kernels.bench import roofline
from awq_harness.kernels.bench.shapes import BenchCase
from awq_harness.reports.collect import record as report_record
from awq_harness.reports.session import write_sections

SECTION = "kernel_speedups"
FIELDS = ("kernel", "path", "shape", "batch", "N", "K", "group_size", "dtype", "time_ms", "ref_time_ms",
          "speedup", "gbps", "tflops", "bound", "device", "dry_run", "timer")


def make_record(case: BenchCase, path: str, time_ms: float, ref_time_ms: float, device: str,
                dry_run: bool, timer: str) -> dict:
    seconds = time_ms / 1e3
    return {
        "kernel": case.kernel, "path": path, "shape": case.shape,
        "batch": case.m, "N": case.n, "K": case.k, "group_size": case.group_size, "dtype": "float16",
        "time_ms": time_ms, "ref_time_ms": ref_time_ms, "speedup": ref_time_ms / time_ms,
        "gbps": roofline.awq_bytes(case.m, case.k, case.n, case.group_size) / seconds / 1e9,
        "tflops": roofline.flops(case.m, case.k, case.n) / seconds / 1e12,
        "bound": roofline.speedup_bound(case.m, case.k, case.n, case.group_size),
        "device": device, "dry_run": dry_run, "timer": timer,
    }


def record_key(record: dict) -> str:
    return f"{record['kernel']}|{record['shape']}|M={record['batch']}"


def send_to_report(record: dict) -> None:
    """Hand the record to the regression report (kept only while a results file is being collected)."""
    report_record(SECTION, record)


def write_results(path: Path, records: list[dict], decode: list[dict] | None = None) -> None:
    """A results file (``reports.schema``) with the records and the decode records (kernels/bench/decode.py)."""
    write_sections(path, {SECTION: records, "decode_speed": decode or []})
