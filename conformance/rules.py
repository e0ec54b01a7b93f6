"""The registry of named rules. Every finding the verifier emits carries one of these ids.

A rule is bound to its check: each check module declares its ``Rule`` objects (id, one-line
title, default severity) at its top, next to the code that emits them, and builds every
finding through ``rule.finding``, so no check can emit an id that was not declared. A module
that emits a rule declared by another imports that ``Rule`` object. This module only collects
the declarations, from the check modules in ``CHECK_MODULES`` order, into ``RULES`` (id -> Rule):
the pytest front end makes one test item per id, and ``verify --json`` lists them as
"rules_run". Two modules declaring the same id is an error at import.

A new rule takes two files: its check module (the declaration and the check that emits it)
and a seeded defect in tests/conformance/defects.py (reference_defects.py for a rule that needs
--reference) that makes it fire; the completeness test in tests/conformance/test_defects.py fails
without one. A new check module also joins ``CHECK_MODULES``.
"""
from __future__ import annotations

from types import ModuleType

from awq_harness.conformance import (
    config_rules,
    ct_fields,
    declared,
    fold_consistency,
    folder,
    functional,
    loaders,
    modules,
    moe,
    numeric,
    reference,
    runner,
    safeheader,
    structure,
)
from awq_harness.conformance.findings import Rule

# in import order: a module comes after every module whose rules it imports, so the first module
# that holds a rule is the one that declares it
CHECK_MODULES: tuple[ModuleType, ...] = (
    safeheader, folder, declared, config_rules, structure, ct_fields, loaders, modules, moe, numeric, reference,
    fold_consistency, functional, runner)


def declared_rules(module: ModuleType) -> list[Rule]:
    """The rules a module holds at its top level: those it declares and those it imports."""
    return [v for v in vars(module).values() if isinstance(v, Rule)]


def collect(check_modules: tuple[ModuleType, ...]) -> dict[str, Rule]:
    """id -> Rule over the modules; a rule imported from an earlier module is the same object,
    a second object with the same id is a second declaration."""
    found: dict[str, Rule] = {}
    for module in check_modules:
        for rule in declared_rules(module):
            if rule.id in found and found[rule.id] is not rule:
                raise ValueError(f"rule {rule.id} is declared twice (again in {module.__name__})")
            found.setdefault(rule.id, rule)
    return found


RULES: dict[str, Rule] = collect(CHECK_MODULES)
