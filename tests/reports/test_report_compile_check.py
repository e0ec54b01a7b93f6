"""The compile-check section of the report: summary per architecture, every compilation, the
failing ones flagged (a failed case, or a negative control that passed)."""
from awq_harness.reports import compile_check
from awq_harness.reports.collect import check_record
from awq_harness.reports.render import render_report
from awq_harness.reports.schema import Results, build_document

CONFIG = {"block_m": 16, "block_n": 64, "block_k": 64, "split_k": 1, "num_warps": 4, "num_stages": 3}
OK = {"arch": "sm_90", "kernel": "gemm", "dtype": "float16", "ok": True, "config": CONFIG, "registers": 92,
      "spill_bytes": 0, "shared_bytes": 17728, "shared_limit": 232448, "mma": "mma.sync", "errors": [],
      "control": False}
SPILL = {**OK, "arch": "sm_86", "ok": False, "spill_bytes": 64, "shared_limit": 101376,
         "errors": ["64 bytes spilled to local memory"]}
CONTROL = {**OK, "arch": "sm_86", "ok": False, "shared_bytes": 106880, "shared_limit": 101376, "control": True,
           "errors": ["shared memory 106880 B > sm_86's 101376 B"]}


def _run(entries):
    run = {"date": "2026-12-01T00:00:00", "git_commit": "abc", "host": "h", "device": "cpu", "versions": {}}
    doc = build_document(run, [], {"compile_check": entries})
    return Results("r.json", doc["run"], doc["tests"], doc["sections"])


def test_entries_are_valid_records():
    for entry in (OK, SPILL, CONTROL):
        assert check_record("compile_check", entry) == entry


def test_view_flags_failures_but_not_a_rejected_control():
    view = compile_check.view([OK, SPILL, CONTROL])
    assert [r["arch"] for r in view["failing"]] == ["sm_86"] and not view["failing"][0].get("control")
    by_arch = {s["arch"]: s for s in view["summary"]}
    assert by_arch["sm_86"]["failed"] == 1 and by_arch["sm_90"] == {**by_arch["sm_90"], "cases": 1, "failed": 0}
    assert compile_check.view([{**CONTROL, "ok": True}])["failing"], "a control that passed is a failure"


def test_report_renders_the_section_only_when_recorded():
    html = render_report([_run([OK, SPILL, CONTROL])]).html
    assert "Kernels compiled for GPUs" in html and "64 bytes spilled" in html and "16x64x64 split 1 w4 s3" in html
    assert "Kernels compiled for GPUs" not in render_report([_run([])]).html
