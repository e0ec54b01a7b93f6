"""Each seeded defect is caught by its intended rule; the undamaged checkpoints conform."""
from __future__ import annotations

import pytest

from conformance import RULES, verify
from tests.conformance.defects import DEFECTS


@pytest.mark.parametrize("kind", ["gemm", "ct", "gptq"])
def test_undamaged_checkpoints_conform(built, kind):
    report = verify(built[kind])
    assert report.exit_code() == 0, [f.line() for f in report.findings if f.severity == "error"]
    assert report.format == {"gemm": "awq-gemm", "ct": "compressed-tensors", "gptq": "gptq"}[kind]


def test_table_is_large_and_names_real_rules():
    assert len({d.name for d in DEFECTS}) >= 15
    assert len({d.rule for d in DEFECTS}) >= 15
    assert all(d.rule in RULES for d in DEFECTS)


@pytest.mark.parametrize("defect", DEFECTS, ids=[d.name for d in DEFECTS])
def test_defect_is_caught_by_its_rule(defect, fresh):
    folder = fresh(defect.base)
    defect.damage(folder)
    report = verify(folder)
    hits = [f for f in report.of_rule(defect.rule) if f.severity == defect.severity]
    assert hits, f"{defect.rule} did not fire; findings: {[f.line() for f in report.findings]}"
    assert not report.of_rule("verifier.internal"), [f.line() for f in report.of_rule("verifier.internal")]
    if defect.exit_code is not None:
        assert report.exit_code() == defect.exit_code
    assert all(f.message and f.rule in RULES for f in report.findings)
