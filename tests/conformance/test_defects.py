"""Each seeded defect is caught by its intended rule, with that severity, naming where; the
undamaged checkpoints conform; and every rule in conformance.rules has a seeded defect, so a
rule added without one fails here by name."""

from __future__ import annotations

import pytest

from awq_harness.conformance import RULES, verify
from awq_harness.conformance.findings import Rule
from tests.conformance.defects import DEFECTS, Defect
from tests.conformance.reference_defects import REFERENCE_DEFECTS

ALL_DEFECTS = DEFECTS + REFERENCE_DEFECTS


def rules_without_defect(defects: list[Defect]) -> list[str]:
    """Rule ids of conformance.rules.RULES that no entry of ``defects`` makes fire."""
    return sorted(set(RULES) - {d.rule for d in defects})


@pytest.mark.parametrize("kind", ["gemm", "ct", "gptq", "moe", "ct-mixed"])
def test_undamaged_checkpoints_conform(built, kind):
    report = verify(built[kind])
    assert report.exit_code() == 0, [f.line() for f in report.findings if f.severity == "error"]
    assert report.format == {"gemm": "gemm", "ct": "compressed-tensors", "gptq": "gptq", "moe": "gemm",
                             "ct-mixed": "compressed-tensors"}[kind]


def test_every_rule_has_a_seeded_defect():
    missing = rules_without_defect(ALL_DEFECTS)
    assert not missing, f"rules with no seeded defect in tests/conformance/*defects.py: {', '.join(missing)}"


def test_completeness_check_names_a_rule_added_without_a_defect(monkeypatch):
    """Negative control: the check above is not vacuous."""
    monkeypatch.setitem(RULES, "numeric.made-up", Rule("numeric.made-up", "a rule no defect triggers"))
    assert rules_without_defect(ALL_DEFECTS) == ["numeric.made-up"]


def test_table_names_real_rules_and_distinct_defects():
    assert len({d.name for d in ALL_DEFECTS}) == len(ALL_DEFECTS)
    assert [d.name for d in ALL_DEFECTS if d.rule not in RULES] == []


def _names(finding, where: str | None) -> bool:
    if where is None:
        return bool(finding.file or finding.tensor)
    return any(where in text for text in (finding.file, finding.tensor, finding.message) if text)


def _seeded_fault(*args, **kwargs):
    raise RuntimeError("seeded verifier fault")


@pytest.mark.parametrize("defect", ALL_DEFECTS, ids=[d.name for d in ALL_DEFECTS])
def test_defect_is_caught_by_its_rule(defect, fresh, monkeypatch):
    folder = fresh(defect.base)
    defect.damage(folder)
    reference = None
    if defect.reference is not None:
        reference = fresh("reference")
        defect.reference(reference)
    if defect.fault:
        monkeypatch.setattr(defect.fault, _seeded_fault)
    report = verify(folder, reference=reference)
    hits = [f for f in report.of_rule(defect.rule) if f.severity == defect.severity]
    assert hits, f"{defect.rule} did not fire as {defect.severity}; findings: {[f.line() for f in report.findings]}"
    assert any(_names(f, defect.where) for f in hits), (
        f"no {defect.rule} finding names {defect.where or 'a file or tensor'}: {[f.line() for f in hits]}"
    )
    if defect.rule != "verifier.internal":
        assert not report.of_rule("verifier.internal"), [f.line() for f in report.of_rule("verifier.internal")]
    if defect.exit_code is not None:
        assert report.exit_code() == defect.exit_code
    assert all(f.message and f.rule in RULES for f in report.findings)
