"""Streaming: verify a ~3.9 GB synthetic checkpoint with Llama-2-7B shapes (generated on the
fly, deleted after) and compare with plain sequential reading of the same files.

Both runs start with the folder's pages evicted from the page cache (posix_fadvise on our
own files only), so both pay for the disk. Peak RSS is measured in a child process and
compared with the largest tensor. Targets: >= 80% of read speed, RSS growth
< 2x the largest tensor. A small quick variant runs in the default suite.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from awq_harness.conformance import verify
from tests.conformance.synthetic import LLAMA2_7B, evict, largest_tensor_bytes, sequential_read, write_checkpoint

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
import json, resource, sys, time
from awq_harness import conformance
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter(); report = conformance.verify(sys.argv[1], progress=True); t = time.perf_counter() - t
print(json.dumps({"base_kb": base, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "seconds": t, "errors": report.count("error"), "internal": len(report.of_rule("verifier.internal"))}))
"""


def _child_verify(folder: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "stderr": done.stderr}


def _measure(folder: Path, cfg: dict) -> dict:
    evict(folder)
    t = time.perf_counter()
    nbytes = sequential_read(folder)
    read_s = time.perf_counter() - t
    evict(folder)
    child = _child_verify(folder)
    largest = largest_tensor_bytes(cfg)
    return {"bytes": nbytes, "read_gbps": nbytes / read_s / 1e9, "verify_gbps": nbytes / child["seconds"] / 1e9,
            "ratio": read_s / child["seconds"], "largest_mb": largest / 2**20,
            "rss_base_mb": child["base_kb"] / 1024, "rss_peak_mb": child["peak_kb"] / 1024,
            "rss_growth_mb": (child["peak_kb"] - child["base_kb"]) / 1024, "internal": child["internal"],
            "progress_bar": "verify" in child["stderr"]}


def _report(name: str, m: dict) -> None:
    print(f"\n{name}: {m['bytes'] / 1e9:.2f} GB; sequential read {m['read_gbps']:.2f} GB/s; verify "
          f"{m['verify_gbps']:.2f} GB/s "
          f"({m['ratio']:.0%} of read); peak RSS {m['rss_peak_mb']:.0f} MB (after imports {m['rss_base_mb']:.0f} MB, "
          f"growth {m['rss_growth_mb']:.0f} MB; largest tensor {m['largest_mb']:.0f} MB)")
    try:
        from awq_harness.reports.collect import record
        record("benchmarks",
               {"name": name, "unit": "GB/s", "mean": m["verify_gbps"], **{k: v for k, v in m.items() if k != "bytes"}})
    except ImportError:
        pass


def test_streaming_quick(tmp_path):
    cfg = {"hidden": 1024, "intermediate": 2816, "layers": 4, "vocab": 8000, "kv_hidden": 1024}
    folder = write_checkpoint(tmp_path / "small", cfg, shard_bytes=40 * 1000**2)
    report = verify(folder)
    assert report.format == "gemm" and not report.of_rule("verifier.internal")
    assert not [f for f in report.findings if f.severity == "error" and not f.rule.startswith("numeric.")]


@pytest.mark.slow
def test_streaming_llama2_7b_shapes(tmp_path, benchmark):
    folder = write_checkpoint(tmp_path / "llama2-7b-synthetic", LLAMA2_7B)
    try:
        m = _measure(folder, LLAMA2_7B)
        benchmark.extra_info.update(m)
        benchmark.pedantic(verify, args=(folder,), setup=lambda: evict(folder), rounds=1, iterations=1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    _report("verify llama-2-7b-shaped (cold cache)", m)
    assert m["internal"] == 0 and m["progress_bar"]
    assert m["ratio"] >= 0.8
    assert m["rss_growth_mb"] < 2 * m["largest_mb"]
