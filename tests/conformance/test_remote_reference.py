"""``--reference`` as a URL (conformance/reference.py ``opened``): a golden and its float reference
served from 127.0.0.1 give the same findings as the two folders, the reference's bytes are
fetched as the comparison and the functional check read them (reported against its size), and
a hostile reference server or index ends in findings, never in a fetch elsewhere or a traceback."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from awq_harness.conformance import verify
from awq_harness.golden.specs import BY_NAME
from tests.conformance.helpers import save_float_reference
from tests.conformance.http_server import serve
from tests.conformance.test_remote import GOLDEN, _judged

NAME = "llama-gemm-g64-awq"  # an AutoAWQ layout, so the functional check runs too


@pytest.fixture(autouse=True)
def _remote_env(monkeypatch, tmp_path):
    monkeypatch.setenv("AWQ_HARNESS_REMOTE_TIMEOUT", "2")
    monkeypatch.setenv("AWQ_HARNESS_REMOTE_CACHE", str(tmp_path / "remote-cache"))


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Path:
    """A folder holding the golden (``ck``) and the seeded float model it was quantised from (``ref``)."""
    root = tmp_path_factory.mktemp("served")
    shutil.copytree(GOLDEN / NAME, root / "ck")
    spec = BY_NAME[NAME]
    save_float_reference(root / "ref", spec.family, spec.seed)
    return root


@pytest.fixture(scope="module")
def local(served):
    return verify(served / "ck", reference=served / "ref")


def _summary(report, prefix: str) -> str:
    return next(f.message for f in report.of_rule("file.folder") if f.message.startswith(prefix))


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def test_remote_checkpoint_and_reference_match_the_folders(served, local):
    with serve(served) as (url, server):
        remote = verify(url + "ck/", reference=url + "ref/")
    assert local.functional is not None and remote.functional is not None
    assert remote.layers == local.layers
    assert remote.functional["layers"] == local.functional["layers"]
    assert _judged(remote) == _judged(local)
    ref_bytes = sum(n for _, path, n in server.log if path.startswith("/ref/"))
    assert 0 < ref_bytes <= _size(served / "ref") * 1.01
    assert "of the reference" in _summary(remote, "reference read remotely")


def test_local_checkpoint_with_a_remote_reference(served, local):
    with serve(served / "ref") as (url, _):
        remote = verify(served / "ck", reference=url)
    assert remote.layers == local.layers and _judged(remote) == _judged(local)


def test_reference_index_pointing_elsewhere_is_never_fetched(served, tmp_path):
    ref = tmp_path / "ref"
    shutil.copytree(served / "ref", ref)
    names = list(__import__("safetensors").safe_open(ref / "model.safetensors", "pt").keys())
    hostile = {n: "http://127.0.0.2:1/x.safetensors" for n in names[:2]} | {names[2]: "/etc/passwd"}
    weight_map = {n: "model.safetensors" for n in names} | hostile
    (ref / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with serve(ref) as (url, server):
        report = verify(served / "ck", reference=url)
    outside = [f for f in report.of_rule("file.outside-folder") if f.message.startswith("reference: ")]
    assert len(outside) >= 2 and not report.conforms
    assert not report.of_rule("verifier.internal")
    assert not any("passwd" in p or "x.safetensors" in p for _, p, _ in server.log)


@pytest.mark.parametrize("mode", ["ignore-range", "short", "long", "stall", "bigger"])
def test_hostile_reference_servers_become_findings(served, mode):
    with serve(served / "ref", mode) as (url, _):
        report = verify(served / "ck", reference=url)
    assert not report.conforms
    assert not report.of_rule("verifier.internal"), [f.line() for f in report.of_rule("verifier.internal")]
    said = [f for f in report.findings if f.severity == "error" and "reference" in f.message]
    assert said, [f.line() for f in report.findings if f.severity == "error"]


def test_the_functional_check_fetches_one_layer_at_a_time(served, monkeypatch):
    from awq_harness.conformance.remote import RemoteFiles

    calls, ensure = [], RemoteFiles.ensure_tensors

    def spy(self, path, names):
        calls.append(sorted({n.split(".layers.")[1].split(".")[0] if ".layers." in n else "-" for n in names}))
        return ensure(self, path, names)

    monkeypatch.setattr(RemoteFiles, "ensure_tensors", spy)
    with serve(served) as (url, _):
        report = verify(url + "ck/", reference=url + "ref/", cache=False)
    assert report.functional is not None
    layers = [c for c in calls if c != ["-"]]
    assert layers and all(len(c) == 1 for c in layers), calls  # each fetch: one decoder layer's tensors
    assert len(layers) == 2 * len(report.functional["layers"])  # the reference's and the checkpoint's


def test_hf_reference(served, local, tmp_path, monkeypatch):
    shutil.copytree(served / "ref", tmp_path / "org" / "float" / "resolve" / "main")
    with serve(tmp_path) as (url, server):
        monkeypatch.setenv("HF_ENDPOINT", url.rstrip("/"))
        remote = verify(served / "ck", reference="hf://org/float")
    assert remote.layers == local.layers and _judged(remote) == _judged(local)
    assert all(path.startswith("/org/float/resolve/main/") for _, path, _ in server.log)


def test_reference_header_claiming_100_gb_is_not_fetched(served, tmp_path):
    import struct

    ref = tmp_path / "ref"
    ref.mkdir()
    shutil.copy(served / "ref" / "config.json", ref / "config.json")
    (ref / "model.safetensors").write_bytes(struct.pack("<Q", 100 * 1000**3) + b"{}" * 100)
    with serve(ref) as (url, server):
        report = verify(served / "ck", reference=url)
    header = [f for f in report.of_rule("file.header") if f.message.startswith("reference: ")]
    assert header and not report.conforms and not report.of_rule("verifier.internal")
    assert sum(n for _, path, n in server.log if path.endswith(".safetensors")) < 1000
