"""Hypothesis corruption suite: mutate a real sharded checkpoint (headers, lengths, offsets,
bytes, truncation, index, config, symlinks) and require that the verifier always answers
with findings that carry registered rule ids: no exception (no ``verifier.internal``
finding), no hang (a per-example time bound), no unbounded memory (peak RSS bound).
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import struct
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from awq_harness.conformance import RULES, verify
from tests.conformance.http_server import serve

EXAMPLES = 1000
LONG_EXAMPLES = 10000
HTTP_EXAMPLES = 1000  # the share of the long suite run over HTTP (a local server on 127.0.0.1)
# the work bound is CPU seconds of this process (verifier and test server threads): wall time also counts
# the other processes sharing the machine; a hang (a read that never ends) spends no CPU, so it has its
# own, wider wall-clock bound
CPU_SECONDS_PER_EXAMPLE = 10.0
HANG_SECONDS = 60.0
RSS_GROWTH_LIMIT_MB = 400
PROGRESS_EVERY = 500
COUNT = {"examples": 0, "with_errors": 0, "max_cpu": 0.0, "max_wall": 0.0}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10)
names = st.sampled_from(["../x.safetensors", "/etc/hostname", "", "model.safetensors", "a/../../b", "x\x00y",
                         "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "nope.safetensors"])


def _shards(folder: Path) -> list[Path]:
    """Regular shard files only: an earlier mutation may have made one a symlink to /dev/zero,
    which the verifier must refuse but which the test itself must not read either."""
    return sorted(p for p in folder.glob("*.safetensors") if p.is_file() and not p.is_symlink())


def _header(path: Path) -> tuple[int, dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return n, json.loads(raw[8: 8 + n]), raw[8 + n:]


def _rewrite(path: Path, header: dict, data: bytes) -> None:
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)


def flip_header_bytes(data, folder):
    path = data.draw(st.sampled_from(_shards(folder)))
    n, _, _ = _header(path)
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        raw[data.draw(st.integers(0, 8 + n - 1))] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(raw))


def set_header_length(data, folder):
    path = data.draw(st.sampled_from(_shards(folder)))
    raw = bytearray(path.read_bytes())
    raw[:8] = struct.pack("<Q", data.draw(st.integers(0, 2**64 - 1)))
    path.write_bytes(bytes(raw))


def mutate_entry(data, folder):
    path = data.draw(st.sampled_from(_shards(folder)))
    _, header, blob = _header(path)
    name = data.draw(st.sampled_from(sorted(header)))
    entry = header[name]
    if isinstance(entry, dict):
        key = data.draw(st.sampled_from(["dtype", "shape", "data_offsets", "extra"]))
        entry[key] = data.draw(json_values | st.lists(st.integers(-5, 2**41), max_size=3))
    else:
        header[name] = data.draw(json_values)
    _rewrite(path, header, blob)


def shift_offsets(data, folder):
    path = data.draw(st.sampled_from(_shards(folder)))
    _, header, blob = _header(path)
    name = data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
    a, b = header[name]["data_offsets"]
    delta = data.draw(st.integers(-len(blob), len(blob)))
    header[name]["data_offsets"] = [max(0, a + delta), max(0, b + data.draw(st.sampled_from([0, delta])))]
    _rewrite(path, header, blob)


def truncate(data, folder):
    path = data.draw(st.sampled_from(_shards(folder)))
    os.truncate(path, data.draw(st.integers(0, path.stat().st_size)))


def overwrite_data(data, folder):
    path = data.draw(st.sampled_from(_shards(folder)))
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 64))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(raw))


def append_garbage(data, folder):
    path = data.draw(st.sampled_from(_shards(folder)))
    with open(path, "ab") as f:
        f.write(data.draw(st.binary(min_size=1, max_size=256)))


def mutate_index(data, folder):
    path = folder / "model.safetensors.index.json"
    if path.is_symlink():
        return
    choice = data.draw(st.integers(0, 3))
    if choice == 0:
        path.write_bytes(data.draw(st.binary(max_size=64)))
        return
    idx = json.loads(path.read_text())
    wm = idx["weight_map"]
    key = data.draw(st.sampled_from(sorted(wm)))
    if choice == 1:
        del wm[key]
    elif choice == 2:
        wm[key] = data.draw(names)
    else:
        idx["weight_map"] = data.draw(json_values)
    path.write_text(json.dumps(idx))


def mutate_config(data, folder):
    path = folder / "config.json"
    if path.is_symlink():
        return
    if data.draw(st.booleans()):
        path.write_bytes(data.draw(st.binary(max_size=64)))
        return
    cfg = json.loads(path.read_text())
    target = cfg["quantization_config"] if data.draw(st.booleans()) else cfg
    key = data.draw(st.sampled_from(sorted(target) + ["quant_method", "version", "group_size",
                                                      "hidden_size", "ignore"]))
    target[key] = data.draw(json_values)
    path.write_text(json.dumps(cfg))


def symlinks(data, folder):
    victim = data.draw(st.sampled_from(_shards(folder) + [folder / "config.json",
                                                          folder / "model.safetensors.index.json"]))
    victim.unlink()
    target = data.draw(st.sampled_from(["/etc/hostname", "/dev/zero", victim.name, "../" + victim.name, "missing"]))
    os.symlink(target, victim)


def replace_with_folder(data, folder):
    victim = data.draw(st.sampled_from(_shards(folder) + [folder / "config.json"]))
    victim.unlink()
    victim.mkdir()


MUTATIONS = [flip_header_bytes, set_header_length, mutate_entry, shift_offsets, truncate, overwrite_data,
             append_garbage, mutate_index, mutate_config, symlinks, replace_with_folder]


def _apply(mutation, data, folder: Path) -> bool:
    """Apply one mutation; an earlier one may have left nothing it can work on (test side)."""
    try:
        mutation(data, folder)
        return True
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, struct.error):
        return False


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def address_space_cap(extra_bytes: int):
    """Cap this process's address space at its current size + ``extra_bytes`` (then restore):
    a runaway allocation becomes a MemoryError finding instead of a machine-wide OOM."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    current = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (current + extra_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _suite(base: Path, examples: int, over_http: bool = False) -> None:
    COUNT.update(examples=0, with_errors=0, max_cpu=0.0, max_wall=0.0)
    start_rss = _peak_rss_mb()
    with address_space_cap(2 * 1024**3):
        run_examples(base, examples, over_http)
    where = " over HTTP" if over_http else ""
    print(f"\ncorruption suite{where}: {COUNT['examples']} examples, {COUNT['with_errors']} ended with error findings, "
          f"0 exceptions; slowest example {COUNT['max_cpu']:.2f} s CPU, {COUNT['max_wall']:.2f} s wall; "
          f"peak RSS grew {_peak_rss_mb() - start_rss:.0f} MB (peak {_peak_rss_mb():.0f} MB)")
    assert COUNT["examples"] >= examples * 0.9
    assert _peak_rss_mb() - start_rss < RSS_GROWTH_LIMIT_MB


def test_corruption_suite(built):
    _suite(built["gemm"], EXAMPLES)


@pytest.mark.slow
def test_corruption_suite_long(built):
    _suite(built["gemm"], LONG_EXAMPLES)


@pytest.mark.slow
def test_corruption_suite_over_http(built, monkeypatch, tmp_path):
    """The same mutations served over HTTP: remote reading must hold the same guarantees."""
    monkeypatch.setenv("AWQ_HARNESS_REMOTE_TIMEOUT", "5")
    monkeypatch.setenv("AWQ_HARNESS_REMOTE_CACHE", str(tmp_path / "remote-cache"))
    _suite(built["gemm"], HTTP_EXAMPLES, over_http=True)


def _verify(folder: Path, over_http: bool):
    if not over_http:
        return verify(folder)
    with serve(folder) as (url, _):
        return verify(url)


def run_examples(base: Path, examples: int, over_http: bool = False) -> None:
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data(), mutations=st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3))
    def one(data, mutations):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "ck"
            shutil.copytree(base, folder)
            applied = [m for m in mutations if _apply(m, data, folder)]
            mutation = applied[0] if applied else mutations[0]
            cpu, wall = time.process_time(), time.monotonic()
            report = _verify(folder, over_http)
            cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        COUNT["examples"] += 1
        COUNT["with_errors"] += report.count("error") > 0
        COUNT.update(max_cpu=max(COUNT["max_cpu"], cpu), max_wall=max(COUNT["max_wall"], wall))
        if COUNT["examples"] % PROGRESS_EVERY == 0:  # long runs: a partial result survives an interrupted run
            print(f"\n{COUNT['examples']} examples, slowest {COUNT['max_cpu']:.2f} s CPU / "
                  f"{COUNT['max_wall']:.2f} s wall, peak RSS {_peak_rss_mb():.0f} MB", flush=True)
        assert cpu < CPU_SECONDS_PER_EXAMPLE, f"{mutation.__name__} took {cpu:.1f} s of CPU"
        assert wall < HANG_SECONDS, f"{mutation.__name__} took {wall:.1f} s (a hang?)"
        assert report.findings, "every case must end in at least one finding"
        assert all(f.rule in RULES and f.severity in ("error", "warning", "info") for f in report.findings)
        internal = report.of_rule("verifier.internal")
        assert not internal, f"{mutation.__name__}: {[f.message for f in internal]}"
        json.loads(report.to_json())

    one()
