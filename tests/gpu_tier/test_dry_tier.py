"""The GPU tier's CPU dry mode (default run): the same functions as tests/gpu_tier/test_gpu_tier.py
on a tiny seeded Llama under the Triton interpreter, tiny sizes. It checks the tier's logic
(quantise every method and bit width, score, order, gap, baseline band, decode through the
GEMM- and GEMV-layout kernels), never a number: a random tiny model has no perplexity order."""
from __future__ import annotations

import math

import pytest
import torch

from awq_harness.awq_ref.data.tiny import VOCAB, tiny_model
from awq_harness.reports.baselines import load_baseline, write_section
from awq_harness.reports.collect import record
from tests.gpu_tier.tier import GapSetting, band_failures, decode_rows, gap_rows, order_failures, perplexity_rows

pytestmark = pytest.mark.xdist_group("gpu_tier_dry")  # one worker quantises the tiny model once
DRY = GapSetting("tiny-llama", 32, calib_samples=2, calib_seqlen=32, windows=2, seqlen=32)
DEVICE = "cpu (dry run)"


def _ids(shape, seed):
    return torch.randint(3, VOCAB, shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def rows():
    model = tiny_model("llama", seed=2, hidden=64, intermediate=128, layers=1)
    found = perplexity_rows(model, _ids((DRY.calib_samples, DRY.calib_seqlen), 1),
                            _ids((DRY.windows * DRY.seqlen,), 2), DRY, "cpu", DEVICE, dry_run=True)
    for row in found:
        record("perplexity", row)  # as the GPU run does, so the dry run's report has the same sections
    return found


def test_dry_perplexity_rows_cover_every_method_and_bit_width(rows):
    assert [(r["method"], r["bits"]) for r in rows] == [("fp", 16)] + [(m, b) for b in DRY.bits
                                                                      for m in ("awq", "gptq", "rtn")]
    assert all(math.isfinite(r["ppl"]) and r["ppl"] > 1 and r["dry_run"] for r in rows)
    fp = rows[0]["ppl"]
    assert all(r["ppl"] != fp for r in rows[1:]), "every variant was quantised (none left the float weights)"
    gaps = gap_rows(rows, DRY.bits)
    assert [g["bits"] for g in gaps] == list(DRY.bits) and all(math.isfinite(g["awq_minus_gptq"]) for g in gaps)


def _synthetic(fp=10.0, awq=10.5, gptq=10.6, rtn=11.0) -> list[dict]:
    rows = [{"model": "m", "method": "fp", "bits": 16, "group_size": 32, "ppl": fp, "evaluator": "e", "dataset": "d"}]
    return rows + [{**rows[0], "method": m, "bits": b, "ppl": v + (4 - b)} for b in (4, 3)
                   for m, v in (("awq", awq), ("gptq", gptq), ("rtn", rtn))]


def test_order_failures_names_each_broken_order():
    assert order_failures(_synthetic(), (4, 3)) == []
    broken = order_failures(_synthetic(awq=11.5), (4,))
    assert len(broken) == 1 and "FP < AWQ < RTN" in broken[0]
    assert "GPTQ < RTN" in order_failures(_synthetic(gptq=12.0), (3,))[0]


def test_band_failures_without_inside_and_outside_the_band(tmp_path):
    rows = _synthetic()
    assert "no perplexity baseline" in band_failures(rows, None, "Synthetic GPU")[0]
    write_section("Synthetic GPU", "perplexity", rows, tmp_path)
    baseline = load_baseline("Synthetic GPU", tmp_path)
    assert band_failures(rows, baseline, "Synthetic GPU") == []
    worse = [{**r, "ppl": r["ppl"] * 1.05} if r["method"] == "awq" else r for r in rows]
    failures = band_failures(worse, baseline, "Synthetic GPU")
    assert len(failures) == 2 and all("awq" in f for f in failures), failures


def test_dry_decode_through_gemm_and_gemv_layout_kernels(dry_mode, monkeypatch):
    import awq_harness.kernels.dispatch  # noqa: F401 - kernels.dispatch is used through kernels
    from awq_harness import kernels
    calls = []
    real = kernels.dispatch.awq_gemv_layout
    monkeypatch.setattr(kernels.dispatch, "awq_gemv_layout", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = tiny_model("llama", seed=3, hidden=64, intermediate=128, layers=1)
    rows = decode_rows(model, _ids((1, 4), 3), 32, new_tokens=1, device="cpu", device_name=DEVICE, dry_run=True,
                       name="tiny-llama")
    assert [r["layout"] for r in rows] == ["gemm", "gemv"] and calls, "the GEMV layout ran its kernel"
    for row in rows:
        record("decode_speed", row)
    assert all(r["tokens_per_s"] > 0 and r["fp16_tokens_per_s"] > 0 and r["new_tokens"] == 1 for r in rows)
