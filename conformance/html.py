"""A self-contained HTML page of a report (no scripts, no external assets)."""
from __future__ import annotations

from html import escape

from awq_harness.conformance.findings import Report

_STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
          ".error{background:#fdd}.warning{background:#ffd}.info{background:#eef}")
_CLS = {"REFUSES": "error", "MISREADS": "error", "?": "info", "~": "warning"}


def _cls(label: str) -> str:
    """A matrix cell's class from its label (render.MARKS): refusals red, fallbacks yellow, unknown blue."""
    word = label.split(" [")[0]
    return _CLS.get(word, _CLS["~"] if word.startswith("~") else "")


def _row(cells: list[str], cls: str = "") -> str:
    return f"<tr class='{cls}'>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>"


def _table(head: list[str], rows: list[str]) -> str:
    return "<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"


def _matrix(report: Report) -> str:
    """The runtime matrix (verify --target): per target a table, refusing cells marked, and its notes."""
    from awq_harness.conformance.runtimes.render import tables

    m, out = report.runtime_matrix, ""
    for t in (m or {}).get("targets", []):
        head, body, notes = tables(t, m["tp"], m["devices"])
        rows = ["<tr>" + "".join(f"<td class='{_cls(c)}'>{escape(c)}</td>" for c in r) + "</tr>"
                for r in body]
        out += (f"<h3>{escape(t['target'])} {escape(t['version'])} ({escape(t['format'])})</h3>" + _table(head, rows)
                + "<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
    return f"<h2>Runtime matrix</h2>{out}" if out else ""


def render(report: Report) -> str:
    verdict = "conforms" if report.conforms else ("unreadable" if not report.readable else "violations")
    findings = _table(["severity", "rule", "file", "tensor", "message"],
                      [_row([f.severity, f.rule, f.file or "", f.tensor or "", f.message], f.severity)
                       for f in report.findings])
    layers = _table(["rank", "layer", "rel error", "SQNR dB", "aligned rel error"],
                    [_row([r["rank"], r["layer"], r["rel_error"], r["sqnr_db"], r["aligned_rel_error"]])
                     for r in report.layers])
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Conformance: {escape(report.checkpoint)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{escape(report.checkpoint)}</h1>"
            f"<p>Format: {escape(str(report.format))}. Verdict: <b>{verdict}</b>. "
            f"{report.count('error')} errors, {report.count('warning')} warnings.</p>{findings}"
            + (f"<h2>Layers, worst first</h2>{layers}" if report.layers else "") + _matrix(report)
            + "</body></html>\n")
