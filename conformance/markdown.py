"""The findings as GitHub-flavoured Markdown, for a model card (``verify --markdown FILE``).

A verdict line, one table row per rule run (passed, warning or failed, with its title) and a
table of the error and warning findings. Every cell is escaped: tensor and file names come
from the checkpoint, so a pipe, a newline or an HTML tag in them cannot break the table or
inject markup into the card.
"""
from __future__ import annotations

from awq_harness.conformance.findings import Report

_ESCAPES = {"\\": "\\\\", "|": "\\|", "<": "&lt;", ">": "&gt;", "`": "\\`", "*": "\\*", "_": "\\_",
            "[": "\\[", "]": "\\]", "\r": " ", "\n": " "}
MAX_CELL = 300


def cell(text: object) -> str:
    s = str(text)
    s = s if len(s) <= MAX_CELL else s[:MAX_CELL] + "..."
    return "".join(_ESCAPES.get(ch, ch) for ch in s)


def _table(head: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _status(report: Report, rule: str) -> str:
    severities = {f.severity for f in report.of_rule(rule)}
    return "failed" if "error" in severities else "warning" if "warning" in severities else "passed"


def render(report: Report) -> str:
    from awq_harness.conformance.rules import RULES

    verdict = "conforms" if report.conforms else ("could not be read" if not report.readable else "violations")
    rules = [[r, _status(report, r), RULES[r].title if r in RULES else ""]
             for r in sorted(set(report.rules_run))]
    shown = [f for f in report.findings if f.severity in ("error", "warning")]
    parts = [f"## Conformance: {cell(report.checkpoint)}", "",
             f"Format: **{cell(report.format or 'unknown')}**. Verdict: **{verdict}** "
             f"({report.count('error')} errors, {report.count('warning')} warnings), checked by awq-harness "
             f"against {len(rules)} rules.", "", _table(["rule", "result", "what it checks"], rules)]
    if shown:
        parts += ["", "### Findings", "",
                  _table(["severity", "rule", "file", "tensor", "message"],
                         [[f.severity, f.rule, f.file or "", f.tensor or "", f.message] for f in shown])]
    return "\n".join(parts) + "\n"
