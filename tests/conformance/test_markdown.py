"""``verify --markdown FILE``: one row per rule run with its result, a findings table, and
cells that checkpoint-controlled names cannot break out of."""
from __future__ import annotations

import shutil

from awq_harness.conformance.findings import Finding, Report
from awq_harness.conformance.markdown import render
from tests.conformance.helpers import run_cli


def _rows(text: str, header: str) -> list[list[str]]:
    """The cells of the table under the line ``header``, split on unescaped pipes."""
    lines = text.splitlines()
    start = lines.index(header) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells, cur, i = [], "", 1
        while i < len(line):
            if line[i] == "\\":
                cur, i = cur + line[i: i + 2], i + 2
                continue
            if line[i] == "|":
                cells.append(cur.strip())
                cur = ""
            else:
                cur += line[i]
            i += 1
        rows.append(cells)
    return rows


def test_markdown_lists_every_rule_and_the_failing_one(built, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(built["gemm"], bad)
    (bad / "config.json").write_text("[]")
    card = tmp_path / "card.md"
    assert run_cli(["verify", str(bad), "--markdown", str(card)]) == 1
    text = card.read_text()
    rules = _rows(text, "| rule | result | what it checks |")
    assert {r[0] for r in rules if r[1] == "failed"} == {"config.present"}
    assert "Verdict: **violations**" in text
    findings = _rows(text, "| severity | rule | file | tensor | message |")
    assert ["error", "config.present"] in [r[:2] for r in findings]


def test_hostile_names_stay_inside_their_cell():
    evil = "w|x\n## injected <script>alert(1)</script> [link](http://x)"
    report = Report("ckpt", "gemm", findings=[Finding("file.header", "error", evil, "a|b.safetensors", evil)],
                    rules_run=["file.header"])
    text = render(report)
    findings = _rows(text, "| severity | rule | file | tensor | message |")
    assert len(findings) == 1 and len(findings[0]) == 5
    assert "<script>" not in text and "\n## injected" not in text and "[link](" not in text
