"""The claims' verdicts: paired intervals over windows, on rows whose differences are known."""
from pathlib import Path

import pytest
import torch

from awq_harness.awq_ref.eval import claims
from awq_harness.awq_ref.eval.claim_rows import ClaimSettings, RowStore, Variant
from awq_harness.awq_ref.eval.claims import FAILS, HOLDS, UNSURE, better, no_gain
from awq_harness.awq_ref.eval.metrics import TokenScores

SETTINGS = ClaimSettings("test", calib_samples=4, calib_seqlen=64, windows=20, seqlen=33, curve=(2, 4, 8))
T = SETTINGS.seqlen - 1
NOISE = torch.rand(SETTINGS.windows, generator=torch.Generator().manual_seed(0)) * 0.5  # shared by rows


def scores(nats: float, kld: float = 0.1) -> TokenScores:
    """Per-token NLL ``nats`` plus the window noise every row shares (so paired intervals are tight)."""
    n = SETTINGS.windows
    return TokenScores(((nats + NOISE) * T).double(), T, torch.full((n, T), kld) + NOISE[:, None] / 10,
                       torch.ones(n, T, dtype=torch.bool))


class FakeStore(RowStore):
    def __init__(self, table: dict):
        super().__init__(Path("/nonexistent"), "fake", SETTINGS)
        self.table = table

    def get(self, variant: Variant) -> TokenScores:
        return self.table.get(variant.key(SETTINGS), scores(3.0))


def table(**nats) -> dict:
    return {key.replace("_", "-"): scores(v) for key, v in nats.items()}


def test_the_verdict_rules():
    assert (better(-0.02, -0.01), better(0.01, 0.02), better(-0.01, 0.01)) == (HOLDS, FAILS, UNSURE)
    assert (no_gain(-0.001, 0.003), no_gain(-0.03, -0.02), no_gain(-0.02, 0.01)) == (HOLDS, FAILS, UNSURE)


def test_awq_beats_gptq_holds_when_it_is_lower_on_every_window_and_not_when_equal():
    store = FakeStore(table(awq_w4_g64_austen_n4_on_austen=2.0, gptq_w4_g64_austen_n4_on_austen=2.1,
                            awq_w3_g64_austen_n4_on_austen=2.5, gptq_w3_g64_austen_n4_on_austen=2.5))
    results = {r.claim: r for r in claims.all_claims(store)}
    four, three = results["AWQ beats GPTQ at 4 bits"], results["AWQ beats GPTQ at 3 bits"]
    assert four.verdict == HOLDS and four.ci[1] < 0 and four.value < 0
    assert three.verdict == UNSURE and three.value == 0
    assert results["AWQ's lead over GPTQ is larger at 3 bits"].verdict == FAILS  # the gap shrank to 0


def test_rtn_degradation_is_judged_against_the_heavy_line():
    store = FakeStore(table(fp_on_austen=2.0, rtn_w6_g64_on_austen=2.01, rtn_w5_g64_on_austen=2.3,
                            rtn_w4_g64_on_austen=2.5, rtn_w3_g64_on_austen=3.0))
    rows = [r for r in claims.all_claims(store) if r.claim == "RTN degrades heavily below 6 bits"]
    assert [r.comparison for r in rows] == [f"rtn w{b} vs fp" for b in (6, 5, 4, 3)]
    assert all(r.verdict == HOLDS for r in rows)


def test_the_calibration_curve_and_domain_claims_read_their_rows():
    store = FakeStore(table(awq_w4_g64_austen_n2_on_austen=2.3, awq_w4_g64_austen_n4_on_austen=2.2,
                            awq_w4_g64_austen_n8_on_austen=2.2, awq_w4_g64_pydoc_n4_on_pydoc=2.0,
                            awq_w4_g64_austen_n4_on_pydoc=2.4, awq_w4_g64_pydoc_n4_on_austen=2.1))
    results = claims.all_claims(store)
    curve = [r for r in results if r.comparison.startswith("awq w4 n=")]
    assert [r.verdict for r in curve] == [HOLDS, HOLDS]  # helps 2 -> 4; no gain 4 -> 8
    domain = [r for r in results if r.claim.startswith("calibrating on the target domain")]
    assert [r.verdict for r in domain] == [HOLDS, FAILS]  # pydoc helps pydoc; austen hurts austen here


def test_every_claim_row_is_judged_and_serialisable():
    results = claims.all_claims(FakeStore({}))
    assert len(results) == 2 + 1 + 4 + 4 + 2 + 2 + 4
    for r in results:
        j = r.to_json()
        assert j["verdict"] in (HOLDS, FAILS, UNSURE) and j["ci_low"] <= j["ci_high"]
    keys = {v.key(SETTINGS) for v in claims.claim_variants(SETTINGS)}
    assert "awq-w4-g64-austen-n8-on-austen" in keys and "awq-w4-g64-austen-n4-on-austen" in keys


def test_the_domain_cross_table_puts_each_calibration_on_its_row_and_each_text_in_its_column(capsys):
    from awq_harness.awq_ref.cli.claims import print_domains

    def row(calib, on, ppl, n=SETTINGS.calib_samples):
        return {"method": "awq", "bits": 4, "calib_domain": calib, "eval_domain": on, "calib_samples": n,
                "ppl": ppl, "ci": {"ppl": [ppl - 1, ppl + 1]}, "kld_mean": ppl / 100}

    rows = [row("austen", "austen", 11.0), row("austen", "pydoc", 12.0), row("pydoc", "austen", 21.0),
            row("pydoc", "pydoc", 22.0), row("austen", "austen", 99.0, n=2),  # a calibration-curve row: not a cell
            {**row("austen", "austen", 98.0), "method": "gptq"}]
    print_domains(rows, SETTINGS)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["calibrated", "on", "on", "austen", "on", "pydoc"]
    austen, pydoc = (line.split() for line in lines[2:4])
    assert austen[0] == "austen" and austen[1] == "11.000" and austen[6] == "12.000"
    assert pydoc[0] == "pydoc" and pydoc[1] == "21.000" and pydoc[6] == "22.000"
    assert "99.000" not in "".join(lines) and "98.000" not in "".join(lines)


def test_parts_split_the_models_so_each_is_quantised_once_and_together_cover_every_row(monkeypatch, tmp_path):
    from awq_harness.awq_ref.cli import main

    computed: list[list[Variant]] = []
    monkeypatch.setattr(RowStore, "compute", lambda self, variants: computed.append(list(variants)))
    for k in range(3):
        assert main(["claims", "--settings", "ci", "--dtype", "float32", "--store", str(tmp_path),
                     "--part", f"{k}/3"]) == 0
    from awq_harness.awq_ref.eval.claim_rows import CI

    every = claims.claim_variants(CI)
    assert sorted(v.key(CI) for part in computed for v in part) == sorted(v.key(CI) for v in every)
    models = [{v.model_key(CI) for v in part} for part in computed]
    assert all(a.isdisjoint(b) for i, a in enumerate(models) for b in models[i + 1:])
    awq_rows = [v for v in every if v.model_key(CI) == claims.q("awq", 4).model_key(CI)]
    assert len(awq_rows) == 2 and any(set(awq_rows) <= set(part) for part in computed)  # one model, both texts


class PartialStore(FakeStore):
    """Holds only ``table``'s rows, as a store whose run is still going."""

    def get(self, variant: Variant) -> TokenScores:
        if variant.key(SETTINGS) not in self.table:
            assert not self.compute_missing, "stored_claims computed a row"
            raise claims.RowMissing(variant.label)
        return self.table[variant.key(SETTINGS)]


def test_stored_claims_are_those_whose_rows_exist_with_the_values_of_the_full_table():
    rows = table(fp_on_austen=2.0, rtn_w6_g64_on_austen=2.01, rtn_w5_g64_on_austen=2.3, rtn_w4_g64_on_austen=2.5,
                 rtn_w3_g64_on_austen=3.0, awq_w4_g64_austen_n4_on_austen=2.2)
    got, missing = claims.stored_claims(PartialStore(rows))
    full = {(r.claim, r.comparison): r for r in claims.all_claims(FakeStore(rows))}
    assert {r.claim for r in got} == {"AWQ beats RTN at 4 bits", "RTN degrades heavily below 6 bits"}
    assert all(r == full[(r.claim, r.comparison)] for r in got)
    assert "gptq w4 calib austen on austen" in missing and "nf4 w4 on austen" in missing
    assert len(missing) == len(set(missing))


def test_claims_stored_only_prints_what_is_stored_and_computes_nothing(tmp_path, monkeypatch, capsys):
    from dataclasses import replace

    from awq_harness.awq_ref.cli import main
    from awq_harness.awq_ref.eval.claim_rows import SETTINGS as ALL

    monkeypatch.setattr(RowStore, "_compute_model", lambda self, group: pytest.fail(f"computed {group}"))
    settings = replace(ALL["ci"], calib_dtype="float32", eval_dtype="float32")
    store = RowStore(tmp_path, "default", settings)
    for variant, nats in ((claims.fp(), 2.0), (claims.q("rtn", 6), 2.01), (claims.q("rtn", 5), 2.3),
                          (claims.q("rtn", 4), 2.5), (claims.q("rtn", 3), 3.0)):
        store._save(variant, scores(nats), {"label": variant.label})
    assert main(["claims", "--settings", "ci", "--dtype", "float32", "--store", str(tmp_path), "--stored-only"]) == 0
    out = capsys.readouterr().out
    assert out.count("RTN degrades heavily below 6 bits") == 4 and "AWQ beats" not in out
    assert "not computed yet (claims that need it are left out): gptq w4 calib austen on austen" in out
    assert "rtn w3 on austen" in out and "awq w4 calib austen on austen" not in out.split("row ")[-1]
