"""Debian-shipped text: a cached .deb is used as is, a failed fetch is one clear error, and the
extracted folder is built once and never left half-written."""
import subprocess

import pytest

from awq_harness.awq_ref.data import debian
from awq_harness.awq_ref.errors import DataError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AWQ_HARNESS_CACHE", str(tmp_path))
    return tmp_path


def test_a_cached_deb_is_used_without_apt(cache, monkeypatch):
    (cache / "debs").mkdir()
    for name in ("pkg_1.0-1_all.deb", "pkg_1.0-2_all.deb"):
        (cache / "debs" / name).write_bytes(b"")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("apt-get must not run"))
    assert debian.fetch_deb("pkg", "pkg_1.0-*_all.deb", "pkg", "text").name == "pkg_1.0-2_all.deb"


def test_a_failed_fetch_names_the_command_and_the_folder(cache, monkeypatch):
    def fail(cmd, **kwargs):
        raise subprocess.CalledProcessError(100, cmd, stderr="E: Unable to locate package pkg\n")

    monkeypatch.setattr(subprocess, "run", fail)
    with pytest.raises(DataError) as err:
        debian.fetch_deb("pkg", "pkg_*.deb", "pkg=1.0", "the text corpus")
    message = str(err.value)
    assert "'apt-get download pkg=1.0'" in message and str(cache / "debs") in message
    assert "Unable to locate package pkg" in message and "\n" not in message


def test_a_fetch_that_brings_the_wrong_version_is_refused(cache, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda cmd, cwd, **k: (cwd / "pkg_2.0-1_all.deb").write_bytes(b""))
    with pytest.raises(DataError, match="fetched no pkg matching pkg_1.0-"):
        debian.fetch_deb("pkg", "pkg_1.0-*_all.deb", "pkg", "text")


def test_the_folder_is_built_once_and_a_failed_build_leaves_nothing(cache):
    def broken(staging):
        (staging / "half.txt").write_text("x")
        raise DataError("sha256 mismatch")

    with pytest.raises(DataError):
        debian.extracted_once("corpus", broken)
    assert not (cache / "text" / "corpus").exists()
    builds = []

    def build(staging):
        builds.append(staging)
        (staging / "book.txt").write_text("text")
        (staging / debian.DONE).write_text("sums")

    first = debian.extracted_once("corpus", build)
    assert debian.extracted_once("corpus", build) == first and len(builds) == 1
    assert (first / "book.txt").read_text() == "text"


def test_pinned_texts_are_checked_and_a_mismatch_leaves_the_folder_unfinished(tmp_path):
    import hashlib

    texts = {"a": "first", "b": "second"}
    pinned = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in texts.items()}
    debian.write_pinned(tmp_path, texts, pinned, "pkg.deb")
    assert (tmp_path / "b.txt").read_text() == "second"
    assert (tmp_path / debian.DONE).read_text().splitlines() == [f"{pinned['a']}  a.txt", f"{pinned['b']}  b.txt"]
    (tmp_path / "x").mkdir()
    with pytest.raises(DataError, match=r"pkg.deb: b extracted with sha256 \w+, expected 0+$"):
        debian.write_pinned(tmp_path / "x", texts, {**pinned, "b": "0" * 64}, "pkg.deb")
    assert not (tmp_path / "x" / debian.DONE).exists()  # extracted_once then discards the staging folder
