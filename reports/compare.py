"""Compare a run's results with a baseline run and list what regressed, by stated rules.

Rules (defaults in ``Thresholds``):

* kernel speed-up: a (kernel, shape, batch, group size) record whose speed-up fell below
  the baseline's by more than the speed band;
* perplexity: a (model, method, bits, group size, evaluator, dataset) entry, or a point of a
  calibration curve, whose perplexity rose by more than the allowed relative delta, or
  that became non-finite;
* findings: an error or warning finding (checkpoint, rule, file, tensor) not in the baseline;
* tests: a test that passed in the baseline and now fails or errors;
* benchmarks: a pytest-benchmark whose median time grew by more than the benchmark band.

Records present on only one side are listed as added / missing, not as regressions.
Dry-run kernel records (the CPU mode of the GPU benchmarks) are never compared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from reports.schema import Results

KERNEL_KEY = ("kernel", "shape", "batch", "group_size")
PERPLEXITY_KEY = ("model", "method", "bits", "group_size", "evaluator", "dataset")
CALIBRATION_KEY = ("model", "method", "bits", "group_size", "n_samples")
FINDING_KEY = ("checkpoint", "rule", "file", "tensor")
BENCHMARK_KEY = ("name",)
FLAGGED_SEVERITIES = ("error", "warning")
FAILING_OUTCOMES = ("failed", "error")


@dataclass(frozen=True)
class Thresholds:
    speed_band: float = 0.10
    ppl_delta: float = 0.01
    bench_band: float = 0.25

    def rules(self) -> list[str]:
        return [f"kernel speed-up more than {self.speed_band:.0%} below the baseline's",
                f"perplexity more than {self.ppl_delta:.1%} above the baseline's (or not finite)",
                "any new error or warning finding from the verifier",
                "a test that passed in the baseline now fails",
                f"benchmark median time more than {self.bench_band:.0%} above the baseline's"]


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
    for kind, section, fields, metric, verdict in _metric_rules(thresholds):
        _compare_metric(result, kind, section, current, baseline, fields, metric, verdict)
    result.regressions += new_findings(current, baseline) + newly_failing_tests(current, baseline)
    return result


Verdict = Callable[[float, float], int]  # -1 worse, 0 within the band, +1 better


def _metric_rules(t: Thresholds) -> list[tuple[str, str, tuple[str, ...], str, Verdict]]:
    return [("kernel speed-up", "kernel_speedups", KERNEL_KEY, "speedup", _lower_is_worse(t.speed_band)),
            ("perplexity", "perplexity", PERPLEXITY_KEY, "ppl", _higher_is_worse(t.ppl_delta)),
            ("calibration curve", "calibration_curve", CALIBRATION_KEY, "ppl", _higher_is_worse(t.ppl_delta)),
            ("benchmark median", "benchmarks", BENCHMARK_KEY, "median", _higher_is_worse(t.bench_band))]


def _lower_is_worse(band: float) -> Verdict:
    def verdict(now: float, before: float) -> int:
        if not math.isfinite(now):
            return -1
        return -1 if now < before * (1 - band) else (1 if now > before * (1 + band) else 0)
    return verdict


def _higher_is_worse(delta: float) -> Verdict:
    def verdict(now: float, before: float) -> int:
        if not math.isfinite(now):
            return 0 if not math.isfinite(before) else -1
        return -1 if now > before * (1 + delta) else (1 if now < before * (1 - delta) else 0)
    return verdict


def _compare_metric(result: Comparison, kind: str, section: str, current: Results, baseline: Results,
                    fields: tuple[str, ...], metric: str, verdict: Verdict) -> None:
    now = index(_measured(current.sections[section]), fields)
    base = index(_measured(baseline.sections[section]), fields)
    for key in (key for key in now if key in base):
        before, after = base[key].get(metric), now[key].get(metric)
        if before is None or after is None:
            continue
        outcome = verdict(float(after), float(before))
        if outcome:
            entry = Regression(kind, describe_key(fields, key), f"{before:.4g}", f"{after:.4g}",
                               _relative_change(float(after), float(before)), section, key)
            (result.regressions if outcome < 0 else result.improvements).append(entry)
    result.missing += [f"{kind}: {describe_key(fields, key)}" for key in base if key not in now]
    result.added += [f"{kind}: {describe_key(fields, key)}" for key in now if key not in base]


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
