"""Findings and the report: what the verifier says, in a versioned JSON schema.

Schema ``awq-harness/conformance-findings`` version 1::

    {"schema": "awq-harness/conformance-findings", "schema_version": 1,
     "checkpoint": str, "format": str | null, "readable": bool, "conforms": bool,
     "rules_run": [rule id, ...],
     "findings": [{"rule", "severity", "message", "file", "tensor"}, ...],
     "layers": [{"layer", "rel_error", "sqnr_db", "rank"}, ...]   # with --reference only
     "summary": {"error": int, "warning": int, "info": int},
     "runtime_matrix": {...}   # with verify --target only (conformance/runtimes/matrix.py)
    }

Severities: ``error`` (a violation: exit 1), ``warning`` (loads somewhere but risky),
``info`` (facts such as the detected format or the valid tensor-parallel sizes).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

SCHEMA = "awq-harness/conformance-findings"
SCHEMA_VERSION = 1
SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    message: str
    file: str | None = None
    tensor: str | None = None

    def line(self) -> str:
        where = ":".join(x for x in (self.file, self.tensor) if x)
        return f"{self.severity.upper():7} {self.rule:28} {where + ': ' if where else ''}{self.message}"


@dataclass(frozen=True)
class Rule:
    """A named verifier rule: its id, a one-line statement of what it checks, and the severity
    its findings get unless the check says otherwise. A check module declares its rules at the
    top and builds every finding through ``rule.finding``, so a finding's id is always a declared one."""
    id: str
    title: str
    severity: str = "error"

    def finding(self, message: str, file: str | None = None, tensor: str | None = None,
                severity: str | None = None) -> Finding:
        return Finding(self.id, severity or self.severity, message, file, tensor)


@dataclass
class Report:
    checkpoint: str
    format: str | None = None
    readable: bool = True
    findings: list[Finding] = field(default_factory=list)
    rules_run: list[str] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)
    functional: dict | None = None  # with --reference: layer-wise hidden-state errors and perplexities
    runtime_matrix: dict | None = None  # with --target: per runtime, layers x (TP, device) cells

    def of_rule(self, rule: str) -> list[Finding]:
        return [f for f in self.findings if f.rule == rule]

    def count(self, severity: str) -> int:
        return sum(f.severity == severity for f in self.findings)

    @property
    def conforms(self) -> bool:
        return self.readable and self.count("error") == 0

    def exit_code(self) -> int:
        if not self.readable:
            return 2
        return 0 if self.conforms else 1

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
            "checkpoint": self.checkpoint, "format": self.format,
            "readable": self.readable, "conforms": self.conforms,
            "rules_run": sorted(set(self.rules_run)),
            "findings": [asdict(f) for f in self.findings],
            "layers": self.layers,
            "functional": self.functional,
            "summary": {s: self.count(s) for s in SEVERITIES},
        } | ({"runtime_matrix": self.runtime_matrix} if self.runtime_matrix is not None else {})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)
