"""Realistic results documents for the report tests, built from formulas (no saved output).

``good_run`` is a plausible nightly GPU run; ``next_run`` is the following night with small
noise inside every threshold; ``inject_regression`` adds exactly three regressions to it.
"""
from __future__ import annotations

import copy
import math

from awq_harness.reports.schema import build_document

SHAPES = {"llama2-7b.qkv": (4096, 12288), "llama2-7b.down": (11008, 4096), "llama3-8b.gate_up": (4096, 28672)}
BATCHES = (1, 4, 16, 64, 256, 1024)
BOUND = {128: 3.85, 64: 3.71}
REGRESSED_KERNEL = ("gemv", "llama2-7b.down", 4, 128)
REGRESSED_PPL = ("smollm2-135m", "awq", 4, 64)
NEW_FINDING_RULE = "AWQ-ZERO-RANGE"


def _bound(batch: int, group_size: int) -> float:
    """Memory-bound at batch 1 (fp16 bits over 4-bit weight bits), tending to 1 when compute-bound."""
    return round(max(1.0, BOUND[group_size] / (1 + batch / 96)), 4)


def _speedup(kernel: str, batch: int, group_size: int, wiggle: float) -> float:
    efficiency = 0.93 if kernel == "gemv" else 0.85
    return round(max(0.6, _bound(batch, group_size) * efficiency / (1 + batch / 400)) * wiggle, 4)


def kernel_speedups(wiggle) -> list[dict]:
    rows = []
    for kernel in ("gemv", "gemm"):
        for group_size in (128, 64):
            for shape, (k, n) in SHAPES.items():
                for batch in BATCHES:
                    speedup = _speedup(kernel, batch, group_size, wiggle(kernel, shape, batch))
                    ref_ms = 2 * k * n / 600e9 * 1e3 * (1 + batch / 64)
                    time_ms = ref_ms / speedup
                    rows.append({"kernel": kernel, "shape": shape, "batch": batch, "group_size": group_size,
                                 "speedup": speedup, "bound": _bound(batch, group_size),
                                 "ref_time_ms": round(ref_ms, 5), "time_ms": round(time_ms, 5),
                                 "gbps": round(k * n * 0.52 / time_ms / 1e6, 1),
                                 "tflops": round(2 * batch * k * n / time_ms / 1e9, 2), "dry_run": False})
    return rows


def perplexities(shift: float) -> list[dict]:
    base = {"fp": 16.2, "rtn": 18.9, "gptq": 17.4, "awq": 17.1}
    rows = [{"model": "smollm2-135m", "method": "fp", "bits": 16, "group_size": None, "ppl": base["fp"],
             "evaluator": "own", "dataset": "austen-heldout"}]
    for bits, penalty in ((4, 1.0), (3, 3.2)):
        for method in ("rtn", "gptq", "awq"):
            ppl = base["fp"] + (base[method] - base["fp"]) * penalty
            rows.append({"model": "smollm2-135m", "method": method, "bits": bits, "group_size": 64,
                         "ppl": round(ppl * shift, 4), "evaluator": "own", "dataset": "austen-heldout"})
    return rows


def calibration_curve(shift: float) -> list[dict]:
    return [{"model": "smollm2-135m", "method": "awq", "bits": 4, "group_size": 64, "n_samples": n, "seqlen": 512,
             "ppl": round((17.05 + 1.6 / math.sqrt(n)) * shift, 4)} for n in (2, 4, 8, 16, 32, 64, 128, 256)]


def layer_errors() -> list[dict]:
    rows = []
    for layer in range(30):
        isolated = 0.012 + 0.004 * math.sin(layer / 3) + (0.02 if layer == 27 else 0)
        rows.append({"model": "smollm2-135m", "layer": f"layers.{layer}", "rel_error": round(isolated, 5),
                     "sqnr_db": round(-20 * math.log10(isolated), 2), "mode": "isolated"})
        accumulated = isolated * (1 + layer / 12)
        rows.append({"model": "smollm2-135m", "layer": f"layers.{layer}", "rel_error": round(accumulated, 5),
                     "mode": "accumulated"})
    return rows


def findings() -> list[dict]:
    return [{"checkpoint": "smollm2-135m-awq-w4g64", "rule": "VLLM-TP-SPLIT", "severity": "warning",
             "message": "group size 64 does not divide the 8-way split of down_proj", "file": "model.safetensors",
             "tensor": "model.layers.0.mlp.down_proj.qweight"},
            {"checkpoint": "smollm2-135m-awq-w4g64", "rule": "FORMAT-DETECTED", "severity": "info",
             "message": "AutoAWQ GEMM, version gemm", "file": "config.json", "tensor": None}]


def sensitivity() -> list[dict]:
    return [{"model": "smollm2-135m", "layer": f"layers.{layer}", "score": round(0.02 + 0.3 / (1 + abs(layer - 27)), 4),
             "metric": "delta ppl"} for layer in range(0, 30, 3)]


def tests(failing: tuple[str, ...] = ()) -> list[dict]:
    names = [f"tests/kernels/test_gemv.py::test_matches_reference[{i}]" for i in range(6)]
    names += ["tests/test_eval.py::test_ppl_order", "tests/conformance/test_rules.py::test_defects"]
    return [{"nodeid": n, "outcome": "failed" if n in failing else "passed", "duration_s": 0.5} for n in names]


def run_info(date: str, commit: str) -> dict:
    return {"date": date, "git_commit": commit, "git_dirty": False, "host": "gpu-runner-3", "device": "NVIDIA A10",
            "versions": {"python": "3.11.7", "torch": "2.13.0", "triton": "3.9.0", "transformers": "5.23.0",
                         "cuda": "13.0"}, "pytest_args": ["-m", "gpu"], "exitstatus": 0, "duration_s": 812.0}


def _document(date: str, commit: str, wiggle, shift: float) -> dict:
    sections = {"kernel_speedups": kernel_speedups(wiggle), "perplexity": perplexities(shift),
                "calibration_curve": calibration_curve(shift), "layer_errors": layer_errors(),
                "findings": findings(), "sensitivity": sensitivity(),
                "benchmarks": [{"name": "tests/kernels/test_bench.py::test_dequant", "median": 0.0021, "mean": 0.0022,
                                "min": 0.002, "max": 0.0031, "rounds": 50, "unit": "s"}]}
    return build_document(run_info(date, commit), tests(), sections)


def good_run() -> dict:
    return _document("2026-11-22T02:00:00+00:00", "a1b2c3d4e5f60718293a", lambda *key: 1.0, 1.0)


def next_run() -> dict:
    """The next night: every value moved, but inside the thresholds (speed 3%, ppl 0.4%)."""
    def wiggle(kernel, shape, batch):
        return 1.0 + 0.03 * math.sin(len(kernel) + 3 * len(shape) + batch)
    return _document("2026-11-23T02:00:00+00:00", "0f1e2d3c4b5a69788796", wiggle, 1.004)


def inject_regression(document: dict) -> dict:
    """A copy with one kernel 30% slower, AWQ w4 perplexity +5% and one new error finding."""
    doc = copy.deepcopy(document)
    doc["run"]["date"] = "2026-11-24T02:00:00+00:00"
    doc["run"]["git_commit"] = "deadbeef00112233"
    for row in doc["sections"]["kernel_speedups"]:
        if (row["kernel"], row["shape"], row["batch"], row["group_size"]) == REGRESSED_KERNEL:
            row["speedup"] = round(row["speedup"] * 0.7, 4)
            row["time_ms"] = round(row["time_ms"] / 0.7, 5)
    for row in doc["sections"]["perplexity"]:
        if (row["model"], row["method"], row["bits"], row["group_size"]) == REGRESSED_PPL:
            row["ppl"] = round(row["ppl"] * 1.05, 4)
    doc["sections"]["findings"].append({
        "checkpoint": "smollm2-135m-awq-w4g64", "rule": NEW_FINDING_RULE, "severity": "error",
        "message": "qzeros hold 16 in 4-bit layer layers.3.self_attn.q_proj",
        "file": "model.safetensors", "tensor": "model.layers.3.self_attn.q_proj.qzeros"})
    return doc
