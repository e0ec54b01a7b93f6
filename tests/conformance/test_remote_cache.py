"""The persistent remote cache (conformance/remote_cache.py): a second verify of a URL fetches
(almost) nothing, a file changed on the server (new ETag) is fetched again, a corrupted blob is
detected by its hash and refetched, ``cache=False`` and servers without validators bypass it,
the size bound evicts the least recently used, and two processes can share it."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from awq_harness.conformance import verify
from awq_harness.conformance.remote_cache import RangeCache
from tests.conformance.http_server import serve
from tests.conformance.test_remote import _judged

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache_dir(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("AWQ_HARNESS_REMOTE_TIMEOUT", "2")
    monkeypatch.setenv("AWQ_HARNESS_REMOTE_CACHE", str(tmp_path / "remote-cache"))
    monkeypatch.delenv("AWQ_HARNESS_REMOTE_CACHE_BYTES", raising=False)
    return tmp_path / "remote-cache"


def _fetched(server, since: int = 0) -> int:
    return sum(n for *_, n in server.log[since:])


def _blobs(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.glob("*/*") if not p.name.startswith("tmp."))


def test_second_verify_fetches_almost_nothing(fresh, cache_dir):
    folder = fresh("gemm")
    with serve(folder) as (url, server):
        first = verify(url)
        mark = len(server.log)
        second = verify(url)
    assert first.conforms and _judged(second) == _judged(first)
    assert _fetched(server, mark) < _fetched(server) / 100, (_fetched(server, mark), _fetched(server))
    assert any("from the local cache" in f.message for f in second.of_rule("file.folder"))


def test_a_changed_file_is_fetched_again(fresh, cache_dir):
    folder = fresh("gemm")
    with serve(folder) as (url, server):
        assert verify(url).conforms
        shard = sorted(folder.glob("*.safetensors"))[0]
        raw = bytearray(shard.read_bytes())
        raw[-4096:] = b"\xff" * 4096  # the file's last tensor bytes become NaN / all-ones codes
        shard.write_bytes(bytes(raw))
        os.utime(shard, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime: a new ETag
        mark = len(server.log)
        changed = verify(url)
    local = verify(folder)
    assert _judged(changed) == _judged(local) and not local.conforms
    assert any(path.endswith(shard.name) and n for _, path, n in server.log[mark:])


def test_a_corrupted_blob_is_detected_and_refetched(fresh, cache_dir):
    folder = fresh("gemm")
    with serve(folder) as (url, server):
        first = verify(url)
        victim = max(_blobs(cache_dir), key=lambda p: p.stat().st_size)
        raw = bytearray(victim.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        victim.write_bytes(bytes(raw))
        mark = len(server.log)
        second = verify(url)
    assert _judged(second) == _judged(first)
    refetched = _fetched(server, mark)
    assert refetched >= len(raw) and refetched < _fetched(server)
    assert not victim.exists() or victim.read_bytes() != bytes(raw)


def test_no_cache_and_no_validator_bypass_it(fresh, cache_dir):
    folder = fresh("gemm")
    with serve(folder) as (url, server):
        verify(url, cache=False)
        once = _fetched(server)
        verify(url, cache=False)
    assert _fetched(server) == 2 * once and not _blobs(cache_dir)
    with serve(folder, validators=False) as (url, server):
        verify(url)
        verify(url)
    assert not _blobs(cache_dir)


def test_a_file_changing_during_the_run_is_refused_and_not_cached(built, cache_dir):
    with serve(built["gemm"], "drift") as (url, _):
        report = verify(url)
    assert not report.conforms and not report.of_rule("verifier.internal")
    assert any("changed on the server during the run" in f.message for f in report.findings)
    assert not _blobs(cache_dir)


def test_the_bound_evicts_the_least_recently_used(tmp_path):
    cache = RangeCache(tmp_path, bound=10**6)
    for i, url in enumerate("abc"):
        cache.put(url, "v", 0, bytes([i]) * 100)
        for blob in cache.entry(url, "v").iterdir():
            os.utime(blob, (1000 + i, 1000 + i))  # a oldest, c newest
    assert cache.pieces("a", "v", 0, 100)  # a used again: now the most recent
    cache = RangeCache(tmp_path, bound=250)
    cache.evict()
    assert {url for url in "abc" if cache.pieces(url, "v", 0, 100)} == {"a", "c"}
    assert not cache.pieces("a", "another validator", 0, 100)


def test_the_bound_holds_for_a_run(fresh, cache_dir, monkeypatch):
    monkeypatch.setenv("AWQ_HARNESS_REMOTE_CACHE_BYTES", "60000")
    with serve(fresh("gemm")) as (url, _):
        assert verify(url).conforms
    assert 0 < sum(p.stat().st_size for p in _blobs(cache_dir)) <= 60000


def test_two_processes_share_the_cache(fresh, cache_dir):
    folder = fresh("gemm")
    code = ("import sys; from awq_harness.conformance import verify; r = verify(sys.argv[1]); "
            "print(r.conforms, sorted((f.rule, f.severity) for f in r.findings if f.severity != 'info'))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with serve(folder) as (url, _):
        procs = [subprocess.Popen([sys.executable, "-c", code, url], env=env, stdout=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=300)[0] for p in procs]
        again = verify(url)
    assert all(p.returncode == 0 for p in procs) and outs[0] == outs[1] and outs[0].startswith("True")
    assert again.conforms and not list(cache_dir.glob("*/tmp.*"))
