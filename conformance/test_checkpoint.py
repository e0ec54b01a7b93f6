"""One test item per conformance rule, run against ``--checkpoint`` (see plugin.py)."""
from __future__ import annotations

import warnings

import pytest

from awq_harness.conformance.rules import RULES


@pytest.mark.parametrize("rule", sorted(RULES))
def test_rule(rule, conformance_report, request):
    if rule.startswith(("reference.", "functional.")) and not request.config.getoption("--reference"):
        pytest.skip("needs --reference FP_DIR")
    found = conformance_report.of_rule(rule)
    for f in found:
        if f.severity == "warning":
            warnings.warn(f"{rule}: {f.line()}", stacklevel=1)
    errors = [f.line() for f in found if f.severity == "error"]
    if rule == "file.folder" and not conformance_report.readable and not errors:
        errors = ["the checkpoint could not be read"]
    assert not errors, f"{RULES[rule].title}:\n" + "\n".join(errors)
