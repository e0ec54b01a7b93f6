"""Each verifier rule is bound to its check: declared once, at the top of the module that emits
it, collected into conformance.rules.RULES, and the only way to build a finding is from a
declared Rule, so an id no module declared cannot be emitted."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

from awq_harness import conformance
from awq_harness.conformance import RULES
from awq_harness.conformance.findings import Rule
from awq_harness.conformance.rules import CHECK_MODULES, collect, declared_rules

PACKAGE = Path(conformance.__file__).parent


def _sources() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(PACKAGE.glob("*.py"))}


def free_findings(source: str) -> list[int]:
    """Lines that build a Finding other than through ``Rule.finding``: a direct ``Finding(...)``
    or a copy with its ``rule`` replaced."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        if name == "Finding" or any(k.arg == "rule" for k in node.keywords):
            lines.append(node.lineno)
    return lines


def rule_declarations(source: str) -> tuple[list[str], list[int]]:
    """The ids of ``NAME = Rule(...)`` at module top level, and the lines of any other ``Rule(...)``."""
    tree = ast.parse(source)
    top = [n.value for n in tree.body if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)]
    ids = [c.args[0].value for c in top if isinstance(c.func, ast.Name) and c.func.id == "Rule"]
    elsewhere = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                 and n.func.id == "Rule" and n not in top]
    return ids, elsewhere


def test_findings_are_built_only_from_rules():
    found = {name: free_findings(src) for name, src in _sources().items() if name != "findings.py"}
    assert not {name: lines for name, lines in found.items() if lines}


def test_the_free_finding_scan_catches_an_undeclared_id():
    """Negative control: a check that writes its own id string is flagged."""
    source = 'def check():\n    return [Finding("numeric.made-up", "error", "x")]\n'
    assert free_findings(source) == [2]
    assert free_findings("from dataclasses import replace\nreplace(f, rule='numeric.made-up')\n") == [2]


def test_rules_are_declared_only_at_module_top_level():
    found = {name: rule_declarations(src)[1] for name, src in _sources().items() if name != "findings.py"}
    assert not {name: lines for name, lines in found.items() if lines}
    assert rule_declarations("def check():\n    return Rule('numeric.made-up', 'x').finding('m')\n")[1] == [2]


def test_each_id_is_declared_by_exactly_one_module():
    owners: dict[str, list[str]] = {}
    for name, src in _sources().items():
        for rule_id in rule_declarations(src)[0]:
            owners.setdefault(rule_id, []).append(name)
    assert {i: o for i, o in owners.items() if len(o) > 1} == {}
    assert set(owners) == set(RULES)


def test_every_rule_any_module_holds_is_the_registered_one():
    """A check module left out of CHECK_MODULES would leave its rules out of RULES."""
    for info in pkgutil.iter_modules([str(PACKAGE)]):
        module = importlib.import_module(f"awq_harness.conformance.{info.name}")
        strays = [r.id for r in declared_rules(module) if RULES.get(r.id) is not r]
        assert not strays, f"awq_harness.conformance.{info.name} holds rules not in RULES: {strays}"


def test_check_modules_come_after_the_modules_whose_rules_they_import():
    """The first check module holding a rule is the one whose source declares it."""
    first = {}
    for module in CHECK_MODULES:
        for rule in declared_rules(module):
            first.setdefault(rule.id, Path(module.__file__).name)
    declarer = {i: name for name, src in _sources().items() for i in rule_declarations(src)[0]}
    assert first == declarer


def _module(name: str, **rules: Rule) -> ModuleType:
    module = ModuleType(name)
    vars(module).update(rules)
    return module


def test_two_modules_cannot_declare_the_same_id():
    a = _module("a", X=Rule("numeric.made-up", "one"))
    b = _module("b", Y=Rule("numeric.made-up", "another"))
    with pytest.raises(ValueError, match="numeric.made-up is declared twice"):
        collect((a, b))


def test_a_rule_imported_from_another_module_is_collected_once():
    shared = Rule("numeric.made-up", "one")
    own = Rule("numeric.other", "two")
    registry = collect((_module("a", X=shared), _module("b", X=shared, Y=own)))
    assert list(registry) == ["numeric.made-up", "numeric.other"] and registry["numeric.made-up"] is shared


def test_a_finding_takes_the_rules_id_and_default_severity():
    rule = Rule("numeric.made-up", "a rule", "warning")
    f = rule.finding("message", "model.safetensors", "t.qweight")
    assert (f.rule, f.severity, f.message, f.file, f.tensor) == (
        "numeric.made-up", "warning", "message", "model.safetensors", "t.qweight")
    assert rule.finding("message", severity="error").severity == "error"
