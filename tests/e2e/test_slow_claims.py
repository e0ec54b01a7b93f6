"""Slow: ``awq-harness claims`` on the default model, CI-sized and paper-sized settings.

Every claim of the seed gets a verdict with a paired interval; the quality rows (KL divergence,
top-1) order as quantisation strength says they must. Records ``claims`` and ``quality`` for
the report and writes ``claims-<settings>.json`` into ``$AWQ_HARNESS_RESULTS_DIR`` when set.
Run: ``pytest -m slow tests/e2e/test_slow_claims.py``.
"""
import json
import os
from pathlib import Path

import pytest

from awq_harness.awq_ref.cli import main
from awq_harness.awq_ref.eval.claims import FAILS, HOLDS, UNSURE

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("settings", ["ci", "slow"])
def test_claims_on_the_default_model(settings, tmp_path):
    pytest.importorskip("bitsandbytes")
    pytest.importorskip("hqq")
    folder = Path(os.environ.get("AWQ_HARNESS_RESULTS_DIR") or tmp_path)
    out = folder / f"claims-{settings}.json"
    assert main(["claims", "--settings", settings, "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert {c["verdict"] for c in doc["claims"]} <= {HOLDS, FAILS, UNSURE}
    rows = {r["label"]: r for r in doc["quality"]}
    assert rows["fp on austen"]["top1_agreement"] == 1
    kl = [rows[f"rtn w{b} on austen"]["kld_mean"] for b in (6, 5, 4, 3)]
    assert kl == sorted(kl) and kl[0] > 0  # fewer bits, further from the float model
