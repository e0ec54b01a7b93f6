"""``s3://`` verification (conformance/remote.py ``FsspecSource``, through s3fs) against moto's
S3 server on 127.0.0.1: the same findings as the folder, a URL reference with the functional
check, the range cache on a second run, and an index naming other keys or hosts. Skipped
where moto (server mode) and s3fs are not installed."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")
boto3 = pytest.importorskip("boto3")

from awq_harness.conformance import verify  # noqa: E402
from awq_harness.golden.specs import BY_NAME  # noqa: E402
from tests.conformance.helpers import save_float_reference  # noqa: E402
from tests.conformance.test_remote import GOLDEN, _judged  # noqa: E402

BUCKET = "checkpoints"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A boto3 client of a moto server; s3fs reaches the same server through AWS_ENDPOINT_URL."""
    mp = pytest.MonkeyPatch()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
        mp.setenv(key, value)
    client = boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    server.stop()
    mp.undo()


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("AWQ_HARNESS_REMOTE_TIMEOUT", "5")
    monkeypatch.setenv("AWQ_HARNESS_REMOTE_CACHE", str(tmp_path / "remote-cache"))


def _upload(client, folder: Path, prefix: str) -> str:
    for path in sorted(folder.iterdir()):
        if path.is_file():
            client.upload_file(str(path), BUCKET, f"{prefix}/{path.name}")
    return f"s3://{BUCKET}/{prefix}"


def _fetched(report) -> int:
    line = next(f.message for f in report.of_rule("file.folder") if f.message.startswith("read remotely"))
    return int(re.search(r"fetched (\d+) bytes", line)[1])


def test_s3_checkpoint_matches_the_folder_and_is_cached(s3, built):
    url = _upload(s3, built["gemm"], "gemm")
    local, first, second = verify(built["gemm"]), verify(url), verify(url)
    assert first.conforms and _judged(first) == _judged(local) == _judged(second)
    assert _fetched(first) > 0 and _fetched(second) == 0


def test_s3_reference_runs_the_functional_check(s3, tmp_path):
    name = "llama-gemm-g64-awq"
    save_float_reference(tmp_path / "ref", BY_NAME[name].family, BY_NAME[name].seed)
    ck, ref = _upload(s3, GOLDEN / name, "golden"), _upload(s3, tmp_path / "ref", "reference")
    local = verify(GOLDEN / name, reference=tmp_path / "ref")
    remote = verify(ck, reference=ref)
    assert remote.functional is not None and remote.layers == local.layers
    assert _judged(remote) == _judged(local)


def test_s3_index_naming_other_keys_is_refused(s3, fresh):
    folder = fresh("gemm")
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    names = sorted(index["weight_map"])
    index["weight_map"].update({names[0]: "s3://other-bucket/x.safetensors", names[1]: "../gemm/x.safetensors"})
    index_path.write_text(json.dumps(index))
    report = verify(_upload(s3, folder, "hostile"))
    assert len(report.of_rule("file.outside-folder")) >= 2 and not report.conforms
    assert not report.of_rule("verifier.internal")


def test_missing_s3_prefix_is_unreadable(s3):
    report = verify(f"s3://{BUCKET}/nothing-here")
    assert not report.conforms and report.exit_code() in (1, 2)
    assert not report.of_rule("verifier.internal")

