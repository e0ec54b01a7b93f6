"""Quality rows (KL divergence, top-1) and claims in results: regression rules and the report section."""
import copy
import json

from report_samples import good_run, next_run

from awq_harness.reports.compare import compare
from awq_harness.reports.render import render_report
from awq_harness.reports.schema import load_results

QUALITY = {"model": "default", "settings": "ci", "method": "awq", "bits": 4, "eval_domain": "austen",
           "calib_domain": "austen", "calib_samples": 8, "label": "awq w4", "ppl": 20.0, "kld_mean": 0.05,
           "kld_median": 0.02, "kld_p99": 0.5, "kld_p999": 1.2, "kld_max": 3.0, "top1_agreement": 0.9,
           "kld_mean_ci": [0.045, 0.055]}
CLAIM = {"model": "default", "settings": "ci", "claim": "AWQ beats GPTQ at 4 bits", "comparison": "awq vs gptq",
         "statistic": "ppl ratio - 1", "value": -0.01, "ci_low": -0.02, "ci_high": -0.002, "verdict": "holds"}


def with_rows(document: dict, quality: dict, claim: dict) -> dict:
    doc = copy.deepcopy(document)
    doc["sections"]["quality"], doc["sections"]["claims"] = [quality], [claim]
    return doc


def saved(tmp_path, name, document):
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return load_results(path)


def test_kl_rise_top1_drop_and_a_lost_claim_are_regressions(tmp_path):
    base = saved(tmp_path, "a.json", with_rows(good_run(), QUALITY, CLAIM))
    worse = QUALITY | {"kld_mean": 0.06, "top1_agreement": 0.89}
    lost = CLAIM | {"value": 0.001, "ci_low": -0.004, "ci_high": 0.006, "verdict": "inconclusive"}
    kinds = sorted(r.kind for r in compare(saved(tmp_path, "b.json", with_rows(next_run(), worse, lost)),
                                           base).regressions)
    assert kinds == ["KL divergence", "claim", "top-1 agreement"]


def test_small_changes_flag_nothing_and_a_new_holding_claim_is_an_improvement(tmp_path):
    base = saved(tmp_path, "a.json", with_rows(good_run(), QUALITY, CLAIM | {"verdict": "inconclusive"}))
    near = QUALITY | {"kld_mean": 0.052, "top1_agreement": 0.899}
    result = compare(saved(tmp_path, "b.json", with_rows(next_run(), near, CLAIM)), base)
    assert [r.kind for r in result.regressions] == []
    assert [r.kind for r in result.improvements] == ["claim"]


def test_the_report_shows_the_quality_rows_and_claims(tmp_path):
    run = saved(tmp_path, "a.json", with_rows(good_run(), QUALITY, CLAIM))
    html = render_report([run]).html
    assert 'id="quality"' in html and "AWQ beats GPTQ at 4 bits" in html and "[0.045, 0.055]" in html
