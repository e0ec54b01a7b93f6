"""Compare a run's results with a baseline run and list what regressed, by stated rules.

Rules (defaults in ``Thresholds``):

* kernel speed-up: a (kernel, shape, batch, group size) record whose speed-up left the
  two-sided band ``baseline * (1 +- speed band)``. Slower is a regression; faster is flagged too,
  as a stale baseline, so that later regressions are measured against a current number (rewrite
  it on purpose: ``reports.baselines``). The GPU kernel benchmark judges its records by this
  same comparison;
* perplexity: a (model, method, bits, group size, evaluator, dataset) entry, or a point of a
  calibration curve, whose perplexity rose by more than the allowed relative delta, or
  that became non-finite;
* findings: an error or warning finding (checkpoint, rule, file, tensor) not in the baseline;
* tests: a test that passed in the baseline and now fails or errors;
* benchmarks: a pytest-benchmark whose median time grew by more than the benchmark band;
* quality: a (model, settings, method, bits, texts, calibration size) row whose mean KL divergence
  from the float model rose by more than the KL delta, or whose top-1 agreement fell by more
  than the top-1 delta (relative);
* claims: a claim (model, settings, claim, comparison) that held in the baseline and now does
  not (does not hold, or inconclusive); one that now holds is listed as an improvement.

Records present on only one side are listed as added / missing, not as regressions.
Dry-run kernel records (the CPU mode of the GPU benchmarks) are never compared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from awq_harness.reports.schema import Results

KERNEL_KEY = ("kernel", "shape", "batch", "group_size")
PERPLEXITY_KEY = ("model", "method", "bits", "group_size", "evaluator", "dataset")
CALIBRATION_KEY = ("model", "method", "bits", "group_size", "n_samples")
FINDING_KEY = ("checkpoint", "rule", "file", "tensor")
BENCHMARK_KEY = ("name",)
QUALITY_KEY = ("model", "settings", "method", "bits", "eval_domain", "calib_domain", "calib_samples")
CLAIM_KEY = ("model", "settings", "claim", "comparison")
HOLDS = "holds"
FLAGGED_SEVERITIES = ("error", "warning")
STALE_KERNEL_BASELINE = "stale kernel baseline"
FAILING_OUTCOMES = ("failed", "error")


@dataclass(frozen=True)
class Thresholds:
    speed_band: float = 0.10
    ppl_delta: float = 0.01
    bench_band: float = 0.25
    kld_delta: float = 0.10
    top1_delta: float = 0.005

    def rules(self) -> list[str]:
        return [f"kernel speed-up more than {self.speed_band:.0%} below the baseline's, or more than "
                f"{self.speed_band:.0%} above it (a stale baseline: rewrite it)",
                f"perplexity more than {self.ppl_delta:.1%} above the baseline's (or not finite)",
                "any new error or warning finding from the verifier",
                "a test that passed in the baseline now fails",
                f"benchmark median time more than {self.bench_band:.0%} above the baseline's",
                f"mean KL divergence from the float model more than {self.kld_delta:.0%} above the baseline's, "
                f"or top-1 agreement more than {self.top1_delta:.1%} below it",
                "a claim that held in the baseline no longer holds"]


@dataclass(frozen=True)
class Regression:
    kind: str
    subject: str
    baseline: str
    current: str
    change: str
    section: str = ""
    key: tuple = ()


@dataclass
class Comparison:
    baseline_label: str
    regressions: list[Regression] = field(default_factory=list)
    improvements: list[Regression] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def regressed_keys(self, section: str) -> set[tuple]:
        return {r.key for r in self.regressions if r.section == section}


def key_of(entry: dict[str, Any], fields: tuple[str, ...]) -> tuple:
    return tuple(entry.get(name) for name in fields)


def describe_key(fields: tuple[str, ...], key: tuple) -> str:
    return ", ".join(f"{name} {value}" for name, value in zip(fields, key, strict=True) if value is not None)


def index(entries: list[dict[str, Any]], fields: tuple[str, ...]) -> dict[tuple, dict[str, Any]]:
    return {key_of(entry, fields): entry for entry in entries}


def compare(current: Results, baseline: Results, thresholds: Thresholds | None = None) -> Comparison:
    thresholds = thresholds or Thresholds()
    result = Comparison(baseline.label)
    if current.run.get("device") != baseline.run.get("device"):
        result.notes.append(f"baseline ran on {baseline.run.get('device')!r}, this run on "
                            f"{current.run.get('device')!r}: speed comparisons may not be meaningful")
    dry = sum(1 for e in current.sections["kernel_speedups"] if e.get("dry_run"))
    if dry:
        result.notes.append(f"{dry} dry-run kernel record(s) (CPU harness check, no real timing) not compared")
    for rule in _metric_rules(thresholds):
        _compare_metric(result, rule, current, baseline)
    result.regressions += new_findings(current, baseline) + newly_failing_tests(current, baseline)
    _compare_claims(result, current, baseline)
    return result


Verdict = Callable[[float, float], int]  # -1 worse, 0 within the band, +1 better


@dataclass(frozen=True)
class MetricRule:
    kind: str
    section: str
    fields: tuple[str, ...]
    metric: str
    verdict: Verdict
    better_is_stale: bool = False  # better than the band flags the baseline as stale


def _metric_rules(t: Thresholds) -> list[MetricRule]:
    return [MetricRule("kernel speed-up", "kernel_speedups", KERNEL_KEY, "speedup", _speed_band(t.speed_band),
                       better_is_stale=True),
            MetricRule("perplexity", "perplexity", PERPLEXITY_KEY, "ppl", _higher_is_worse(t.ppl_delta)),
            MetricRule("calibration curve", "calibration_curve", CALIBRATION_KEY, "ppl",
                       _higher_is_worse(t.ppl_delta)),
            MetricRule("benchmark median", "benchmarks", BENCHMARK_KEY, "median", _higher_is_worse(t.bench_band)),
            MetricRule("KL divergence", "quality", QUALITY_KEY, "kld_mean", _higher_is_worse(t.kld_delta)),
            MetricRule("top-1 agreement", "quality", QUALITY_KEY, "top1_agreement", _lower_is_worse(t.top1_delta))]


def speed_band_verdict(now: float, before: float, band: float) -> int:
    """-1 below ``before * (1 - band)`` (or not finite), +1 above ``before * (1 + band)``, else 0."""
    if not math.isfinite(now):
        return -1
    return -1 if now < before * (1 - band) else (1 if now > before * (1 + band) else 0)


def _speed_band(band: float) -> Verdict:
    return lambda now, before: speed_band_verdict(now, before, band)


def _higher_is_worse(delta: float) -> Verdict:
    def verdict(now: float, before: float) -> int:
        if not math.isfinite(now):
            return 0 if not math.isfinite(before) else -1
        return -1 if now > before * (1 + delta) else (1 if now < before * (1 - delta) else 0)
    return verdict


def _lower_is_worse(delta: float) -> Verdict:
    def verdict(now: float, before: float) -> int:
        if not math.isfinite(now):
            return 0 if not math.isfinite(before) else -1
        return -1 if now < before * (1 - delta) else (1 if now > before * (1 + delta) else 0)
    return verdict


def _compare_claims(result: Comparison, current: Results, baseline: Results) -> None:
    base = index(baseline.sections["claims"], CLAIM_KEY)
    for key, entry in index(current.sections["claims"], CLAIM_KEY).items():
        before = base.get(key)
        if before is None or (before["verdict"] == HOLDS) == (entry["verdict"] == HOLDS):
            continue
        change = Regression("claim", describe_key(CLAIM_KEY, key), before["verdict"], entry["verdict"],
                            f"{before['value']:+.4f} -> {entry['value']:+.4f}", "claims", key)
        (result.improvements if entry["verdict"] == HOLDS else result.regressions).append(change)


def _compare_metric(result: Comparison, rule: MetricRule, current: Results, baseline: Results) -> None:
    now = index(_measured(current.sections[rule.section]), rule.fields)
    base = index(_measured(baseline.sections[rule.section]), rule.fields)
    for key in (key for key in now if key in base):
        before, after = base[key].get(rule.metric), now[key].get(rule.metric)
        if before is None or after is None:
            continue
        outcome = rule.verdict(float(after), float(before))
        if outcome:
            _note_change(result, rule, key, float(after), float(before), outcome)
    result.missing += [f"{rule.kind}: {describe_key(rule.fields, key)}" for key in base if key not in now]
    result.added += [f"{rule.kind}: {describe_key(rule.fields, key)}" for key in now if key not in base]


def _note_change(result: Comparison, rule: MetricRule, key: tuple, after: float, before: float,
                 outcome: int) -> None:
    stale = outcome > 0 and rule.better_is_stale
    kind = STALE_KERNEL_BASELINE if stale else rule.kind
    change = _relative_change(after, before) + (", faster than the band" if stale else "")
    entry = Regression(kind, describe_key(rule.fields, key), f"{before:.4g}", f"{after:.4g}", change,
                       rule.section, key)
    (result.regressions if outcome < 0 or stale else result.improvements).append(entry)


def _measured(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries that measured something: dry-run kernel records (CPU harness checks) are left out."""
    return [entry for entry in entries if not entry.get("dry_run")]


def _relative_change(after: float, before: float) -> str:
    if not (math.isfinite(after) and math.isfinite(before)) or before == 0:
        return "n/a"
    return f"{(after - before) / abs(before):+.1%}"


def new_findings(current: Results, baseline: Results) -> list[Regression]:
    known = index(baseline.sections["findings"], FINDING_KEY)
    fresh = [f for f in current.sections["findings"]
             if f.get("severity") in FLAGGED_SEVERITIES and key_of(f, FINDING_KEY) not in known]
    return [Regression("new finding", f"{f['rule']} in {f['checkpoint']}", "absent",
                       f"{f['severity']}: {f['message']}", "new", "findings", key_of(f, FINDING_KEY)) for f in fresh]


def newly_failing_tests(current: Results, baseline: Results) -> list[Regression]:
    before = {t["nodeid"]: t["outcome"] for t in baseline.tests}
    return [Regression("test", t["nodeid"], "passed", t["outcome"], "now failing", "tests", (t["nodeid"],))
            for t in current.tests
            if t["outcome"] in FAILING_OUTCOMES and before.get(t["nodeid"]) == "passed"]
