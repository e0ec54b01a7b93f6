"""reports.compare: regressions against a baseline, by the stated thresholds."""
import json

import pytest
from report_samples import NEW_FINDING_RULE, REGRESSED_KERNEL, REGRESSED_PPL, good_run, inject_regression, next_run

from awq_harness.reports.compare import (
    KERNEL_KEY,
    STALE_KERNEL_BASELINE,
    Thresholds,
    compare,
    key_of,
    speed_band_verdict,
)
from awq_harness.reports.schema import load_results


def saved(tmp_path, name, document):
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return load_results(path)


def test_noise_inside_the_thresholds_flags_nothing(tmp_path):
    comparison = compare(saved(tmp_path, "b.json", next_run()), saved(tmp_path, "a.json", good_run()))
    assert comparison.regressions == []
    assert comparison.missing == [] and comparison.added == []


def test_injected_regression_flags_exactly_the_three_injected_changes(tmp_path):
    baseline = saved(tmp_path, "base.json", good_run())
    current = saved(tmp_path, "cur.json", inject_regression(next_run()))
    flagged = {(r.kind, r.subject) for r in compare(current, baseline).regressions}
    kernel, shape, batch, group = REGRESSED_KERNEL
    model, method, bits, group_size = REGRESSED_PPL
    assert flagged == {
        ("kernel speed-up", f"kernel {kernel}, shape {shape}, batch {batch}, group_size {group}"),
        ("perplexity", f"model {model}, method {method}, bits {bits}, group_size {group_size}, "
                       "evaluator own, dataset austen-heldout"),
        ("new finding", f"{NEW_FINDING_RULE} in smollm2-135m-awq-w4g64"),
    }


def test_thresholds_decide(tmp_path):
    baseline = saved(tmp_path, "base.json", good_run())
    current = saved(tmp_path, "cur.json", inject_regression(next_run()))
    loose = compare(current, baseline, Thresholds(speed_band=0.40, ppl_delta=0.10))
    assert [r.kind for r in loose.regressions] == ["new finding"]


def test_newly_failing_test_and_nan_perplexity_are_regressions(tmp_path):
    doc = next_run()
    doc["tests"][0]["outcome"] = "failed"
    doc["sections"]["perplexity"][1]["ppl"] = float("nan")
    comparison = compare(saved(tmp_path, "cur.json", doc), saved(tmp_path, "base.json", good_run()))
    assert sorted(r.kind for r in comparison.regressions) == ["perplexity", "test"]


def test_device_mismatch_is_noted(tmp_path):
    doc = next_run()
    doc["run"]["device"] = "NVIDIA L4"
    comparison = compare(saved(tmp_path, "cur.json", doc), saved(tmp_path, "base.json", good_run()))
    assert "NVIDIA A10" in comparison.notes[0] and "NVIDIA L4" in comparison.notes[0]


@pytest.mark.parametrize("now,verdict", [
    (2.0, 0), (1.81, 0), (2.19, 0),         # inside baseline * (1 +- 0.10)
    (1.79, -1), (float("nan"), -1),          # below the band, or no longer a number
    (2.21, 1),                               # above the band
])
def test_speed_band_is_two_sided(now, verdict):
    assert speed_band_verdict(now, 2.0, 0.10) == verdict


def test_faster_kernel_beyond_the_band_flags_a_stale_baseline(tmp_path):
    doc = next_run()
    row = doc["sections"]["kernel_speedups"][0]
    row["speedup"] *= 1.5
    comparison = compare(saved(tmp_path, "cur.json", doc), saved(tmp_path, "base.json", good_run()))
    (stale,) = comparison.regressions
    assert stale.kind == STALE_KERNEL_BASELINE and "faster than the band" in stale.change
    assert stale.key == key_of(row, KERNEL_KEY) and comparison.improvements == []


def test_lower_perplexity_is_an_improvement_not_a_regression(tmp_path):
    doc = next_run()
    doc["sections"]["perplexity"][0]["ppl"] *= 0.9
    comparison = compare(saved(tmp_path, "cur.json", doc), saved(tmp_path, "base.json", good_run()))
    assert comparison.regressions == [] and [r.kind for r in comparison.improvements] == ["perplexity"]


def test_dry_run_kernel_records_are_not_compared(tmp_path):
    base, doc = good_run(), inject_regression(next_run())
    for row in base["sections"]["kernel_speedups"] + doc["sections"]["kernel_speedups"]:
        row["dry_run"] = True
    comparison = compare(saved(tmp_path, "cur.json", doc), saved(tmp_path, "base.json", base))
    assert "kernel speed-up" not in {r.kind for r in comparison.regressions}
    assert "72 dry-run kernel record(s)" in comparison.notes[0]
