"""The seed's claims about quantisation methods, rerun on real text with confidence intervals.

Each claim compares rows (``awq_ref.eval.claim_rows``) scored on the *same* windows, so its
interval is a paired percentile bootstrap (``awq_ref.eval.metrics``: windows resampled with
replacement, the same draws for every row). A claim "A is better than B" is judged on the
relative difference ``d = stat(A) / stat(B) - 1`` (perplexity, or mean KL divergence from the
float model): it *holds* when the whole interval of ``d`` is below 0, *does not hold* when it is
wholly above 0, and is *inconclusive* when it straddles 0. "More clearly at 3 bits" compares
the two gaps, ``d3 - d4``, the same way. A claim that something *stops* helping (an effect of
zero) holds when the interval lies within ``EQUIVALENCE`` of 0 or above it (no gain), does not
hold when it is wholly below ``-EQUIVALENCE`` (a real gain), else inconclusive. "Degrades
heavily below 6 bits" holds when RTN's perplexity is at most ``HEAVY`` above the float model's
at 6 bits and more than ``HEAVY`` above it at 5 bits (both intervals clear of the line).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from awq_harness.awq_ref.eval.claim_rows import ClaimSettings, RowMissing, RowStore, Variant
from awq_harness.awq_ref.eval.metrics import LEVEL, RESAMPLES, SEED, resample_indices, window_values

EQUIVALENCE = 0.005  # |d| under 0.5% counts as "no gain"
HEAVY = 0.05         # "degrades heavily": perplexity more than 5% above the float model's
OTHER = "pydoc"      # the second text domain
HOLDS, FAILS, UNSURE = "holds", "does not hold", "inconclusive"
STAT_NAMES = {"nll": "ppl", "kld_mean": "KL mean", "top1_agreement": "top-1"}


def fp(domain: str = "austen") -> Variant:
    return Variant("fp", eval_domain=domain)


def q(method: str, bits: int, calib: str = "austen", on: str = "austen", n: int | None = None) -> Variant:
    return Variant(method, bits, on, calib, n)


@dataclass(frozen=True)
class ClaimResult:
    claim: str
    comparison: str
    statistic: str
    value: float
    ci: tuple[float, float]
    verdict: str

    def to_json(self) -> dict:
        return {"claim": self.claim, "comparison": self.comparison, "statistic": self.statistic,
                "value": self.value, "ci_low": self.ci[0], "ci_high": self.ci[1], "verdict": self.verdict}


class Stats:
    """Each row's statistic as a point value and its ``RESAMPLES`` bootstrap values (shared draws)."""

    def __init__(self, store: RowStore):
        self.store = store
        self._idx: torch.Tensor | None = None

    def __call__(self, variant: Variant, statistic: str = "nll") -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.store.get(variant)
        if self._idx is None:
            self._idx = resample_indices(scores.windows, RESAMPLES, SEED)
        num, den = window_values(scores, statistic)
        point, boot = num.sum() / den.sum(), num[self._idx].sum(dim=1) / den[self._idx].sum(dim=1)
        return (point.exp(), boot.exp()) if statistic == "nll" else (point, boot)


def _ci(boot: torch.Tensor) -> tuple[float, float]:
    low, high = torch.quantile(boot.double(), torch.tensor([(1 - LEVEL) / 2, (1 + LEVEL) / 2], dtype=torch.float64))
    return float(low), float(high)


def better(low: float, high: float) -> str:
    """Verdict on "d < 0" from d's interval."""
    return HOLDS if high < 0 else (FAILS if low > 0 else UNSURE)


def no_gain(low: float, high: float) -> str:
    """Verdict on "d is not below 0" (an effect of zero) from d's interval."""
    return HOLDS if low >= -EQUIVALENCE else (FAILS if high < -EQUIVALENCE else UNSURE)


def _result(claim, comparison, statistic, point, boot, judge) -> ClaimResult:
    ci = _ci(boot)
    return ClaimResult(claim, comparison, statistic, float(point), ci, judge(*ci))


def beats(stats: Stats, claim: str, a: Variant, b: Variant, statistic: str = "nll") -> ClaimResult:
    (pa, ba), (pb, bb) = stats(a, statistic), stats(b, statistic)
    return _result(claim, f"{a.label} vs {b.label}", f"{STAT_NAMES[statistic]} ratio - 1", pa / pb - 1, ba / bb - 1,
                   better)


def gap_grows(stats: Stats, claim: str, a3, b3, a4, b4) -> ClaimResult:
    """(b3/a3 - 1) - (b4/a4 - 1) > 0: b's excess over a is larger at 3 bits; judged as d = -that < 0."""
    (p3a, s3a), (p3b, s3b), (p4a, s4a), (p4b, s4b) = (stats(v) for v in (a3, b3, a4, b4))
    point = -((p3b / p3a - 1) - (p4b / p4a - 1))
    boot = -((s3b / s3a - 1) - (s4b / s4a - 1))
    return _result(claim, f"({b3.label} / {a3.label}) - ({b4.label} / {a4.label}), negated",
                   "gap(w4) - gap(w3)", point, boot, better)


def rtn_degradation(stats: Stats, claim: str) -> list[ClaimResult]:
    pf, bf = stats(fp())
    out = []
    for bits in (6, 5, 4, 3):
        p, b = stats(q("rtn", bits))
        ci = _ci(b / bf - 1)
        if bits == 6:
            verdict = HOLDS if ci[1] <= HEAVY else (FAILS if ci[0] > HEAVY else UNSURE)  # mild at 6 bits
        else:
            verdict = HOLDS if ci[0] > HEAVY else (FAILS if ci[1] <= HEAVY else UNSURE)  # heavy below
        out.append(ClaimResult(claim, f"rtn w{bits} vs fp", f"ppl ratio - 1 (heavy: > {HEAVY:.0%})",
                               float(p / pf - 1), ci, verdict))
    return out


def calibration_size(stats: Stats, claim: str, curve: tuple[int, ...]) -> list[ClaimResult]:
    out = []
    for small, large in zip(curve, curve[1:]):
        a, b = q("awq", 4, n=large), q("awq", 4, n=small)
        (pa, ba), (pb, bb) = stats(a), stats(b)
        judge = no_gain if large == curve[-1] else better
        out.append(_result(claim if large == curve[-1] else f"more calibration helps up to {large} samples",
                           f"awq w4 n={large} vs n={small}", "ppl ratio - 1", pa / pb - 1, ba / bb - 1, judge))
    return out


def domain_claims(stats: Stats, claim: str) -> list[ClaimResult]:
    return [beats(stats, claim, q("awq", 4, OTHER, OTHER), q("awq", 4, "austen", OTHER)),
            beats(stats, claim, q("awq", 4, "austen", "austen"), q("awq", 4, OTHER, "austen"))]


def claim_builders(store: RowStore) -> list[Callable[[], list[ClaimResult]]]:
    """Each claim (or family of comparisons) as a call, in the order the table prints them."""
    s, stats = store.settings, Stats(store)
    out: list[Callable[[], list[ClaimResult]]] = []
    for bits in (4, 3):
        out.append(lambda b=bits: [beats(stats, f"AWQ beats GPTQ at {b} bits", q("awq", b), q("gptq", b))])
    out.append(lambda: [gap_grows(stats, "AWQ's lead over GPTQ is larger at 3 bits", q("awq", 3), q("gptq", 3),
                                  q("awq", 4), q("gptq", 4))])
    for method in ("awq", "gptq"):
        for bits in (4, 3):
            out.append(lambda m=method, b=bits: [beats(stats, f"{m.upper()} beats RTN at {b} bits", q(m, b),
                                                       q("rtn", b))])
    out.append(lambda: rtn_degradation(stats, "RTN degrades heavily below 6 bits"))
    out.append(lambda: calibration_size(stats, f"calibration beyond {s.curve[-2]} samples stops helping", s.curve))
    out.append(lambda: domain_claims(stats, "calibrating on the target domain beats generic calibration"))
    for method in ("awq", "gptq"):
        for statistic in ("nll", "kld_mean"):
            out.append(lambda m=method, st=statistic: [beats(stats, f"{m.upper()} is better than NF4 at 4 bits",
                                                             q(m, 4), q("nf4", 4), st)])
    return out


def all_claims(store: RowStore) -> list[ClaimResult]:
    return [r for build in claim_builders(store) for r in build()]


def stored_claims(store: RowStore) -> tuple[list[ClaimResult], list[str]]:
    """The claims whose rows are all stored (computing none), and the first missing row of each other."""
    was, store.compute_missing = store.compute_missing, False
    results, missing = [], []
    try:
        for build in claim_builders(store):
            try:
                results += build()
            except RowMissing as err:
                missing.append(str(err))
    finally:
        store.compute_missing = was
    return results, list(dict.fromkeys(missing))


def claim_variants(s: ClaimSettings) -> list[Variant]:
    """Every row the claims read, in the order they are worth computing (cheap ones first)."""
    rows = [fp(), fp(OTHER)] + [q("rtn", b) for b in (6, 5, 4, 3)] + [q("nf4", 4), q("hqq", 4), q("hqq", 3)]
    rows += [q("awq", 4), q("awq", 4, on=OTHER), q("gptq", 4), q("awq", 3), q("gptq", 3)]
    rows += [q("awq", 4, OTHER, OTHER), q("awq", 4, OTHER, "austen")]
    rows += [q("awq", 4, n=n) for n in s.curve if n != s.calib_samples]
    return rows


def quality_rows(store: RowStore) -> list[dict]:
    """KL divergence, top-1 agreement and perplexity, with intervals, for every row of the claims
    (a store that does not compute missing rows: the stored ones only)."""
    from awq_harness.awq_ref.eval import metrics

    out = []
    for variant in claim_variants(store.settings):
        if not store.compute_missing and not store.stored(variant):
            continue
        scores = store.get(variant)
        tokens = scores.windows * scores.predicted
        point = {"ppl": float(metrics.ppl_of(scores.nll, tokens))} | metrics.point_estimates(scores)
        out.append({"label": variant.label, "method": variant.method, "bits": variant.bits,
                    "eval_domain": variant.eval_domain, "calib_domain": variant.calib_domain,
                    "calib_samples": variant.calib_samples or store.settings.calib_samples, **point,
                    "ci": metrics.intervals(scores), **store.info(variant)})
    return out

