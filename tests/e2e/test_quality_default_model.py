"""On the default model (SmolLM2-135M, g64): perplexity FP < AWQ < RTN at 4 and 3 bits, and
GPTQ < RTN at 3 bits.

All 30 layers are quantised, on 8 x 256 calibration tokens, in the dtype ``auto`` picks on this
CPU, and scored on 4 x 512 held-out tokens. So that every test fits the default run on any CPU
(an AVX2-only one computes in float32), AWQ's scale-search loss is taken on one of the eight
blocks (``loss_blocks=1``; the activation statistics and the clip search still see all eight);
AutoAWQ's all-block loss and a larger calibration run in the slow calibration-curve test.
GPTQ at 4 bits on this little calibration lands within a few percent of RTN, on either side
depending on the compute dtype, so its 4-bit order is asserted in the slow calibration-curve
test (64 x 512 tokens). Every row is recorded for the report.
"""
import functools

import pytest

from tests.e2e.quality import Setting, float_row, method_row, perplexity_payload, record, tokens, write_json

CI = Setting(calib_samples=8, calib_seqlen=256, windows=4, loss_blocks=1)


@functools.cache
def ppl(method: str, bits: int) -> float:
    """One row, computed once per worker process, recorded for the report and the results dir."""
    row = float_row(CI, tokens()) if method == "fp" else method_row(CI, method, bits, tokens())
    record("perplexity", perplexity_payload(row, CI))
    write_json(f"perplexity_default_model/{method}-w{bits}.json",
               {"setting": CI.resolved(), "ppl": row.result.ppl, "seconds": round(row.seconds, 1)})
    return row.result.ppl


@pytest.mark.parametrize("bits", (4, 3))
def test_awq_sits_between_float_and_rtn(bits):
    fp, awq, rtn = ppl("fp", 16), ppl("awq", bits), ppl("rtn", bits)
    assert fp < awq < rtn, f"w{bits}: fp {fp:.3f}, awq {awq:.3f}, rtn {rtn:.3f}"


def test_gptq_improves_on_rtn_at_3_bits():
    gptq, rtn = ppl("gptq", 3), ppl("rtn", 3)
    assert gptq < rtn, f"w3: gptq {gptq:.3f}, rtn {rtn:.3f}"
