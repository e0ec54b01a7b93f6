"""Verification over HTTP (conformance/remote.py) against a local server on 127.0.0.1: the same
findings as on the folder, only headers and sampled ranges fetched, hf:// URLs, and hostile
servers and indexes turned into findings within the timeout."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from awq_harness.conformance import verify
from awq_harness.golden.specs import GOLDENS
from tests.conformance.http_server import serve
from tests.conformance.synthetic import write_checkpoint

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "checkpoints"
SMALL_7B_SHAPED = {"hidden": 1024, "intermediate": 2816, "layers": 2, "vocab": 4096, "kv_hidden": 1024}


def _judged(report, messages: bool = True) -> list[tuple]:
    """What the verdict rests on: every error and warning (info lines differ: the remote adds its
    summary); without messages, whose measured values move with the remote's smaller sample."""
    return sorted((f.rule, f.severity, f.message if messages else "", f.file, f.tensor)
                  for f in report.findings if f.severity != "info")


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


@pytest.fixture(autouse=True)
def _short_timeout(monkeypatch, tmp_path):
    monkeypatch.setenv("AWQ_HARNESS_REMOTE_TIMEOUT", "2")
    monkeypatch.setenv("AWQ_HARNESS_REMOTE_CACHE", str(tmp_path / "remote-cache"))


@pytest.mark.parametrize("name", sorted(s.name for s in GOLDENS))
def test_every_golden_reads_the_same_over_http(name):
    local = verify(GOLDEN / name)
    with serve(GOLDEN / name) as (url, _):
        remote = verify(url)
    assert remote.conforms == local.conforms and remote.format == local.format
    assert _judged(remote) == _judged(local)
    assert any("read remotely" in f.message for f in remote.of_rule("file.folder"))


def test_sharded_checkpoint_fetches_headers_and_samples_only(tmp_path):
    folder = write_checkpoint(tmp_path / "ckpt", SMALL_7B_SHAPED, shard_bytes=8 << 20)
    local = verify(folder)
    with serve(folder) as (url, server):
        remote = verify(url)
    fetched = sum(n for *_, n in server.log)
    assert _judged(remote, messages=False) == _judged(local, messages=False)
    assert len(list(folder.glob("*.safetensors"))) > 1
    assert fetched < _folder_bytes(folder) / 2, (fetched, _folder_bytes(folder))


def test_hf_urls_resolve_against_the_endpoint(tmp_path, monkeypatch, built):
    import shutil

    shutil.copytree(built["gemm"], tmp_path / "org" / "model" / "resolve" / "v1")
    with serve(tmp_path) as (url, server):
        monkeypatch.setenv("HF_ENDPOINT", url.rstrip("/"))
        report = verify("hf://org/model@v1")
    assert report.conforms and report.format == "gemm"
    assert all(path.startswith("/org/model/resolve/v1/") for _, path, _ in server.log)


def test_functional_check_runs_on_a_remote_checkpoint(built):
    local = verify(built["gemm"], reference=built["reference"])
    with serve(built["gemm"]) as (url, _):
        remote = verify(url, reference=built["reference"])
    assert remote.functional is not None and remote.layers == local.layers
    assert _judged(remote) == _judged(local)


def test_index_pointing_elsewhere_is_never_fetched(fresh):
    folder = fresh("gemm")
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    names = sorted(index["weight_map"])
    hostile = {names[0]: "http://127.0.0.2:1/x.safetensors", names[1]: "/etc/passwd", names[2]: "../up.safetensors"}
    index["weight_map"].update(hostile)
    index_path.write_text(json.dumps(index))
    with serve(folder) as (url, server):
        report = verify(url)
    outside = report.of_rule("file.outside-folder")
    assert not report.conforms and len(outside) >= 3
    assert not report.of_rule("verifier.internal")
    requested = {path for _, path, _ in server.log}
    assert not any("passwd" in p or "up.safetensors" in p or "x.safetensors" in p for p in requested)


def test_header_claiming_100_gb_is_refused_without_fetching_it(tmp_path):
    folder = tmp_path / "huge"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", 100 * 1000**3) + b"{}" * 100)
    with serve(folder) as (url, server):
        report = verify(url)
    assert [f.rule for f in report.findings if f.severity == "error"][:1] == ["file.header"]
    assert sum(n for *_, n in server.log) < 1000


@pytest.mark.parametrize("mode", ["ignore-range", "short", "long", "stall", "bigger"])
def test_hostile_servers_become_findings(built, mode):
    with serve(built["gemm"], mode) as (url, _):
        report = verify(url)
    assert not report.conforms
    assert report.of_rule("file.truncated") or report.of_rule("file.folder")
    assert not report.of_rule("verifier.internal"), [f.line() for f in report.of_rule("verifier.internal")]


def test_unreachable_server_is_unreadable():
    report = verify("http://127.0.0.1:9/nothing/")
    assert not report.conforms and report.exit_code() in (1, 2)
    assert not report.of_rule("verifier.internal")
