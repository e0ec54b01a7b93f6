"""Slow: AWQ with a larger calibration (64 x 512) and the calibration-size curve.

Records ``calibration_curve`` (perplexity vs number of 512-token calibration blocks, AWQ
w4 g64) and ``perplexity`` rows for the report, and writes
``calibration_curve.json`` into ``$AWQ_HARNESS_RESULTS_DIR`` when that is set.
Run: ``pytest -m slow tests/e2e/test_slow_calibration_curve.py``.
"""
import pytest

from tests.e2e.quality import Setting, float_row, method_row, perplexity_payload, record, tokens, write_json

pytestmark = pytest.mark.slow

SAMPLES = (4, 16, 64)
THREE_BIT_SAMPLES = 16  # 3-bit once, at a mid size, to bound the run
SEQLEN = 512
WINDOWS = 16


def setting(n: int) -> Setting:
    return Setting(calib_samples=n, calib_seqlen=SEQLEN, windows=WINDOWS)


@pytest.fixture(scope="module")
def curve():
    ids = tokens()
    big = setting(max(SAMPLES))
    rows = {"fp": float_row(big, ids), "rtn-w4": method_row(big, "rtn", 4, ids),
            "rtn-w3": method_row(big, "rtn", 3, ids), "awq-w3": method_row(setting(THREE_BIT_SAMPLES), "awq", 3, ids),
            "gptq-w4": method_row(big, "gptq", 4, ids)}
    points = []
    for n in SAMPLES:
        row = method_row(setting(n), "awq", 4, ids)
        rows[f"awq-w4-n{n}"] = row
        points.append({"n_samples": n, "ppl": row.result.ppl, "seconds": round(row.seconds, 1)})
        record("calibration_curve", {"model": "default", "method": "awq", "n_samples": n, "ppl": row.result.ppl,
                                     "bits": 4, "group_size": 64, "seqlen": SEQLEN})
    for row in rows.values():
        record("perplexity", perplexity_payload(row, big))
    table = {name: {"ppl": round(r.result.ppl, 4), "seconds": round(r.seconds, 1)} for name, r in rows.items()}
    write_json("calibration_curve.json", {"seqlen": SEQLEN, "windows": WINDOWS, "setting": big.resolved(),
                                          "curve": points, "rows": table})
    print("\ncalibration curve:", points, "\nrows:", table)
    return rows, points


def test_large_calibration_keeps_awq_between_float_and_rtn(curve):
    rows, _ = curve
    fp = rows["fp"].result.ppl
    assert fp < rows[f"awq-w4-n{max(SAMPLES)}"].result.ppl < rows["rtn-w4"].result.ppl
    assert fp < rows["awq-w3"].result.ppl < rows["rtn-w3"].result.ppl


def test_gptq_beats_rtn_at_4_bits_with_a_large_calibration(curve):
    rows, _ = curve
    assert rows["fp"].result.ppl < rows["gptq-w4"].result.ppl < rows["rtn-w4"].result.ppl


def test_every_calibration_size_beats_rtn(curve):
    rows, points = curve
    assert all(p["ppl"] < rows["rtn-w4"].result.ppl for p in points)
