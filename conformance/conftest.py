"""pytest front end: ``pytest conformance --checkpoint PATH [--reference FP_DIR]``.

Each rule becomes one test item (``test_rule[<rule id>]``), so CI can gate on a checkpoint
with pytest's own reporting (``--junitxml`` etc.). A rule fails when it has error findings;
its warnings are shown as pytest warnings. The project's default run (testpaths = tests)
never loads this file. Without ``--checkpoint`` every item is skipped with a reason.
"""
from __future__ import annotations

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("conformance", "checkpoint conformance (pytest conformance --checkpoint PATH)")
    group.addoption("--checkpoint", default=None, help="checkpoint folder to verify")
    group.addoption("--reference", default=None, help="float checkpoint for per-layer reconstruction error")
    group.addoption("--allow-pickle", action="store_true", default=False, help="read .bin/.pt with weights_only")


@pytest.fixture(scope="session")
def conformance_report(request):
    from conformance import verify

    path = request.config.getoption("--checkpoint")
    if not path:
        pytest.skip("no --checkpoint given (run: pytest conformance --checkpoint PATH)")
    return verify(path, reference=request.config.getoption("--reference"),
                  allow_pickle=request.config.getoption("--allow-pickle"), progress=False)
