"""On the default model (SmolLM2-135M, g64): perplexity FP < AWQ < RTN at 4 and 3 bits.

All 30 layers are quantised; calibration and evaluation are small enough for the default
run (see ``CI`` below for sizes; searches and evaluation in the dtype ``auto`` picks on this CPU).
GPTQ runs on the same calibration tokens; its gap to AWQ is recorded, not asserted.
"""
import pytest

from tests.awq.quality import Setting, float_row, method_row, perplexity_payload, record, tokens, write_json

CI = Setting(calib_samples=8, calib_seqlen=256, windows=6)
BITS = (4, 3)


@pytest.fixture(scope="module")
def rows():
    ids = tokens()
    table = {("fp", 16): float_row(CI, ids)}
    for bits in BITS:
        for method in ("rtn", "awq", "gptq"):
            table[(method, bits)] = method_row(CI, method, bits, ids)
    for row in table.values():
        record("perplexity", perplexity_payload(row, CI))
    summary = {f"{m}-w{b}": {"ppl": round(r.result.ppl, 4), "seconds": round(r.seconds, 1)}
               for (m, b), r in table.items()}
    write_json("perplexity_default_model.json", {"setting": CI.resolved(),
                                                 "rows": summary})
    print("\nperplexity (default model, g64):", summary)
    return table


@pytest.mark.parametrize("bits", BITS)
def test_awq_sits_between_float_and_rtn(rows, bits):
    fp, awq, rtn = rows[("fp", 16)].result.ppl, rows[("awq", bits)].result.ppl, rows[("rtn", bits)].result.ppl
    assert fp < awq < rtn, f"w{bits}: fp {fp:.3f}, awq {awq:.3f}, rtn {rtn:.3f}"


@pytest.mark.parametrize("bits", BITS)
def test_gptq_improves_on_rtn_and_the_gap_to_awq_is_reported(rows, bits):
    awq, gptq, rtn = (rows[(m, bits)].result.ppl for m in ("awq", "gptq", "rtn"))
    print(f"\nw{bits}: awq {awq:.3f}  gptq {gptq:.3f}  gap (gptq / awq - 1) {gptq / awq - 1:+.2%}")
    assert gptq < rtn
