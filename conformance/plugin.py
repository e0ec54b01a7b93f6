"""The pytest plugin ``pytest --checkpoint CKPT``, registered through the ``pytest11`` entry point.

After ``pip install awq-harness``, in any folder::

    pytest --checkpoint CKPT [--reference FP_DIR] [--allow-pickle] [--no-cache] [--junitxml j.xml] [-n 4]

runs one test item per conformance rule (``test_rule[<rule id>]``, from
conformance/test_checkpoint.py) against CKPT: a folder, ``https://...``, ``hf://org/name[@rev]``
or ``s3://...``; ``--reference`` likewise (a remote one is fetched as it is read, through the
cache of fetched ranges that ``--no-cache`` bypasses). A rule fails when it has error findings;
its warnings become pytest warnings.
When no test paths are given, the plugin collects only those items; with paths (``pytest
conformance --checkpoint CKPT`` in this repository) it collects what they name.

The plugin also registers the harness's markers (``gpu``, ``slow``, ``peers``). Without
``--checkpoint`` it only adds its options and markers: nothing heavy (torch, the verifier) is
imported, so an unrelated project's run pays nothing for having it installed.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest

MARKERS = (
    "gpu: needs a CUDA device; runs natively on GPU runners (pytest -m gpu)",
    "slow: long runs (minutes); tox -e slow",
    "peers: needs third-party quantisers/loaders (AutoAWQ, GPTQModel, ...); tox -e peers",
)
RULE_TESTS = Path(__file__).with_name("test_checkpoint.py")


def rule_tests() -> str:
    """The rule items' file. Installed, where it lies; in a checkout (an editable install run from
    another folder) a copy in a folder of its own, since collecting it in place would load the
    checkout's conftest.py files. The copy's path depends only on its content, so every xdist
    worker collects the same items."""
    if not any((folder / "conftest.py").is_file() for folder in RULE_TESTS.parents):
        return str(RULE_TESTS)
    text = RULE_TESTS.read_bytes()
    folder = Path(tempfile.gettempdir()) / f"awq-harness-rules-{hashlib.sha256(text).hexdigest()[:16]}"
    target = folder / RULE_TESTS.name
    if not target.is_file() or target.read_bytes() != text:
        target.parent.mkdir(exist_ok=True)
        staged = target.with_name(f".{os.getpid()}.tmp")
        staged.write_bytes(text)
        os.replace(staged, target)
    return str(target)


def pytest_addoption(parser):
    group = parser.getgroup("conformance", "checkpoint conformance (pytest --checkpoint CKPT)")
    group.addoption("--checkpoint", default=None,
                    help="checkpoint to verify: a folder, https://..., hf://org/name[@revision] or s3://...")
    group.addoption("--reference", default=None,
                    help="float checkpoint (a folder or a URL) for per-layer reconstruction error")
    group.addoption("--no-cache", action="store_true", default=False,
                    help="remote checkpoint/reference: neither use nor fill the cache of fetched byte ranges")
    group.addoption("--allow-pickle", action="store_true", default=False, help="read .bin/.pt with weights_only")


def pytest_configure(config):
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    if config.getoption("--checkpoint") and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [rule_tests()]  # no paths given: collect the rule items only


@pytest.fixture(scope="session")
def conformance_report(request):
    from awq_harness.conformance import verify

    path = request.config.getoption("--checkpoint")
    if not path:
        pytest.skip("no --checkpoint given (run: pytest --checkpoint CKPT)")
    return verify(path, reference=request.config.getoption("--reference"),
                  allow_pickle=request.config.getoption("--allow-pickle"), progress=False,
                  cache=not request.config.getoption("--no-cache"))
