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


def _matrix(report: Report) -> list[str]:
    """The runtime matrix (verify --target): per target a table and its numbered notes."""
    from awq_harness.conformance.runtimes.render import tables

    m, out = report.runtime_matrix, []
    for t in (m or {}).get("targets", []):
        head, body, notes = tables(t, m["tp"], m["devices"])
        out += ["", f"### {cell(t['target'])} {cell(t['version'])} ({cell(t['format'])})", "", _table(head, body), ""]
        out += [f"- {cell(n)}" for n in notes]
    return (["", "## Runtime matrix"] + out) if out else []


def render(report: Report) -> str:
    from awq_harness.conformance.rules import RULES
    from awq_harness.conformance.runtimes.matrix import RUNTIME_RULES

    RULES = {**RULES, **RUNTIME_RULES}  # noqa: N806 - the runtime rules run only with --target

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
    return "\n".join(parts + _matrix(report)) + "\n"
