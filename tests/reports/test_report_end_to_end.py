"""Two real pytest runs with the plugin, the second with an injected regression, then the
report: exactly the injected slower kernel, higher perplexity and new finding are flagged."""
import re
import textwrap

from report_helpers import run_pytest, run_report

NIGHTLY_TESTS = textwrap.dedent('''
    import os
    import pytest
    from awq_harness.reports.collect import record

    INJECT = os.environ.get("INJECT_REGRESSION") == "1"

    @pytest.mark.parametrize("batch", [1, 4, 16, 64])
    def test_gemv_speedup(batch):
        speedup = 3.6 / (1 + batch / 64) * (0.7 if INJECT and batch == 4 else 1.0)
        record("kernel_speedups", {"kernel": "gemv", "shape": "llama2-7b.qkv", "batch": batch,
                                   "group_size": 128, "speedup": speedup, "bound": 3.85})

    @pytest.mark.parametrize("method, ppl", [("fp", 16.2), ("rtn", 18.9), ("awq", 17.1)])
    def test_perplexity(method, ppl):
        if INJECT and method == "awq":
            ppl *= 1.05
        record("perplexity", {"model": "tiny", "method": method, "bits": 16 if method == "fp" else 4,
                              "group_size": 64, "ppl": ppl})

    def test_verifier():
        record("findings", {"checkpoint": "tiny-awq", "rule": "TP-SPLIT", "severity": "warning",
                            "message": "group size does not divide an 8-way split"})
        if INJECT:
            record("findings", {"checkpoint": "tiny-awq", "rule": "ZERO-RANGE", "severity": "error",
                                "message": "qzeros out of range"})
''')


def test_injected_regression_is_flagged_exactly(tmp_path, capsys):
    for name, inject in (("good", "0"), ("bad", "1")):
        done = run_pytest(tmp_path, NIGHTLY_TESTS, "--results-json", f"{name}.json",
                          env_extra={"INJECT_REGRESSION": inject})
        assert done.returncode == 0, done.stdout + done.stderr
    status = run_report(str(tmp_path / "bad.json"), "--baseline", str(tmp_path / "good.json"),
                        "--out", str(tmp_path / "report.html"), "--fail-on-regression")
    assert status == 1
    assert "REGRESSED: 3 regressions" in capsys.readouterr().out
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td>", _regressions_table(tmp_path / "report.html"))
    assert sorted(rows) == [
        ("kernel speed-up", "kernel gemv, shape llama2-7b.qkv, batch 4, group_size 128"),
        ("new finding", "ZERO-RANGE in tiny-awq"),
        ("perplexity", "model tiny, method awq, bits 4, group_size 64"),
    ]


def _regressions_table(page) -> str:
    html = page.read_text()
    start = html.index('<table class="regressions">')
    return html[start:html.index("</table>", start)]
