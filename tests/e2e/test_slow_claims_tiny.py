"""Slow: every claim row on the trained tiny Llama (``awq_ref.data.tiny_lm``), end to end.

The same rows and verdicts as ``awq-harness claims`` at a size that needs no default model:
4 x 128 calibration tokens, 8 windows of 128 tokens on each text.
"""
import pytest

from awq_harness.awq_ref.data.tiny_lm import tiny_lm_dir
from awq_harness.awq_ref.eval import claims
from awq_harness.awq_ref.eval.claim_rows import ClaimSettings, RowStore

pytestmark = pytest.mark.slow

TINY = ClaimSettings("tiny", calib_samples=4, calib_seqlen=128, windows=8, seqlen=128, curve=(2, 4), loss_blocks=2)


def test_every_claim_is_judged_and_kl_orders_by_bits(tmp_path):
    pytest.importorskip("bitsandbytes")
    pytest.importorskip("hqq")
    store = RowStore(tmp_path, str(tiny_lm_dir()), TINY)
    results = claims.all_claims(store)
    assert all(r.verdict in (claims.HOLDS, claims.FAILS, claims.UNSURE) for r in results)
    rows = {r["label"]: r for r in claims.quality_rows(store)}
    assert abs(rows["fp on austen"]["kld_mean"]) < 1e-3 and rows["fp on pydoc"]["top1_agreement"] == 1
    kl = [rows[f"rtn w{b} on austen"]["kld_mean"] for b in (6, 5, 4, 3)]
    top1 = [rows[f"rtn w{b} on austen"]["top1_agreement"] for b in (6, 5, 4, 3)]
    assert kl == sorted(kl) and top1 == sorted(top1, reverse=True)
    assert rows["hqq w3 on austen"]["kld_mean"] > rows["hqq w4 on austen"]["kld_mean"]
