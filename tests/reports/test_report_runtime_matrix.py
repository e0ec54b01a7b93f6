"""The runtime-matrix section of the report: verify --target records one entry per cell, and the
report shows one table per (checkpoint, target) with each configuration's worst verdict."""
from awq_harness.awq_ref.cli import main
from awq_harness.reports import runtime_matrix
from awq_harness.reports.collect import check_record, collecting
from awq_harness.reports.render import render_report
from awq_harness.reports.schema import Results, build_document

CELL = {"checkpoint": "c", "target": "vllm", "version": "0.32", "layer": "o_proj 576x576", "tp": 1, "device": "sm90",
        "verdict": "loads", "kernel": "Marlin", "rule": "vllm.marlin", "source": "marlin.py", "why": "", "checked": "x"}
REFUSED = {**CELL, "tp": 2, "verdict": "refuses", "kernel": None, "rule": "vllm.awq.shape"}
FALLBACK = {**CELL, "layer": "down_proj", "tp": 2, "verdict": "fallback", "kernel": "awq (awq_gemm)"}


def _run(entries):
    run = {"date": "2026-12-01T00:00:00", "git_commit": "abc", "host": "h", "device": "cpu", "versions": {}}
    doc = build_document(run, [], {"runtime_matrix": entries})
    return Results("r.json", doc["run"], doc["tests"], doc["sections"])


def test_entries_are_valid_records_and_the_view_takes_the_worst_verdict():
    for entry in (CELL, REFUSED, FALLBACK):
        assert check_record("runtime_matrix", entry) == entry
    (table,) = runtime_matrix.view([CELL, REFUSED, {**FALLBACK, "tp": 1}, FALLBACK])
    assert table["columns"] == ["TP1 sm90", "TP2 sm90"] and table["worst"] == ["fallback", "refuses"]
    assert [r["layer"] for r in table["rows"]] == ["o_proj 576x576", "down_proj"]


def test_report_renders_the_section_only_when_recorded():
    html = render_report([_run([CELL, REFUSED])]).html
    assert "Runtime matrix" in html and "Marlin" in html and "refuses" in html
    assert "Runtime matrix" not in render_report([_run([])]).html


def test_verify_target_records_every_cell(tmp_path):
    from tests.conformance.helpers import make_checkpoint

    path = make_checkpoint(tmp_path / "gemm", layers=1)
    with collecting() as collector:
        assert main(["verify", str(path), "--target", "vllm,sglang", "--tp", "1,2", "--gpu", "sm80,cpu",
                     "--quiet"]) == 0
    cells = collector.sections["runtime_matrix"]
    layers = {c["layer"] for c in cells if c["target"] == "vllm"}
    assert len(cells) == 2 * 4 * len(layers) and {c["target"] for c in cells} == {"vllm", "sglang"}
    assert all(c["rule"] and c["source"] for c in cells)
