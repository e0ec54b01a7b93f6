"""Quality beyond perplexity: KL divergence from the float model and top-1 agreement.

What llama.cpp's ``perplexity --kl-divergence`` reports for comparing quants of one model,
computed per predicted token of the held-out windows (``awq_ref.eval.perplexity``):

    KL(P || Q) = sum_v P(v) (log P(v) - log Q(v))    P: float model's next-token distribution,
                                                     Q: the quantised model's, both full-vocabulary
    top-1 agreement = share of tokens where argmax Q = argmax P

over all tokens: the mean, median, 99th and 99.9th percentile and max of the KL divergence, and
the top-1 agreement. Perplexity is from the same forward.

Confidence intervals: a percentile bootstrap over *windows* (tokens inside a window are not
independent): ``RESAMPLES`` resamples of the windows with replacement, drawn from a
``torch.Generator`` seeded with ``SEED``, each statistic recomputed on the pooled tokens of the
resampled windows, and the central ``LEVEL`` interval of the resampled values. The draws depend
only on (seed, number of windows), so rows scored on the same windows share them and a
difference between two rows gets a *paired* interval (``paired_difference``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
PERCENTILES = {"kld_median": 0.5, "kld_p99": 0.99, "kld_p999": 0.999}
STATISTICS = ("kld_mean", *PERCENTILES, "kld_max", "top1_agreement")  # the keys of point_estimates
CHUNK = 100  # resamples sorted at once (bounds memory for the percentile intervals)


@dataclass(frozen=True)
class TokenScores:
    """Per-window and per-token scores of one model on ``n`` windows of ``t`` predicted tokens."""

    nll: torch.Tensor                 # [n] float64: summed NLL of each window
    predicted: int                    # t: predicted tokens per window (seqlen - 1)
    kld: torch.Tensor | None = None   # [n, t] float32: KL(float || model) of each token
    top1: torch.Tensor | None = None  # [n, t] bool: the model's argmax equals the float model's

    @property
    def windows(self) -> int:
        return self.nll.shape[0]


def resample_indices(n_windows: int, resamples: int = RESAMPLES, seed: int = SEED) -> torch.Tensor:
    """``[resamples, n_windows]`` window indices drawn with replacement; the same for the same n."""
    return torch.randint(n_windows, (resamples, n_windows), generator=torch.Generator().manual_seed(seed))


def _interval(values: torch.Tensor, level: float = LEVEL) -> list[float]:
    low, high = torch.quantile(values.double(), torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64))
    return [float(low), float(high)]


def mean_interval(values: torch.Tensor, resamples: int = RESAMPLES, seed: int = SEED) -> list[float]:
    """Bootstrap interval (``LEVEL``) of the mean of independent per-item values (e.g. cloze hits)."""
    values = values.double().reshape(-1)
    return _interval(values[resample_indices(values.numel(), resamples, seed)].mean(dim=1))


def quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    """Quantile along the last dim with linear interpolation (numpy's default), for any size."""
    ordered = values.sort(dim=-1).values
    pos = q * (ordered.shape[-1] - 1)
    lo, frac = int(math.floor(pos)), pos - math.floor(pos)
    hi = min(lo + 1, ordered.shape[-1] - 1)
    return ordered[..., lo] * (1 - frac) + ordered[..., hi] * frac


def ppl_of(nll: torch.Tensor, tokens: int) -> torch.Tensor:
    """Perplexity from per-window NLL sums (``[..., n]``), ``tokens`` predicted tokens in all."""
    return torch.exp(nll.sum(dim=-1) / tokens)


def _token_stats(kld: torch.Tensor, top1: torch.Tensor) -> dict[str, torch.Tensor]:
    """The KL and top-1 statistics of pooled tokens; ``kld``, ``top1``: [..., tokens]."""
    stats = {"kld_mean": kld.double().mean(dim=-1)}
    stats |= {name: quantile(kld, q).double() for name, q in PERCENTILES.items()}
    stats["kld_max"] = kld.max(dim=-1).values.double()
    stats["top1_agreement"] = top1.double().mean(dim=-1)
    return stats


def point_estimates(scores: TokenScores) -> dict[str, float]:
    """The KL and top-1 statistics over all tokens (perplexity is ``Perplexity.ppl``)."""
    if scores.kld is None:
        return {}
    return {k: float(v) for k, v in _token_stats(scores.kld.reshape(-1), scores.top1.reshape(-1)).items()}


def intervals(scores: TokenScores, resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, list[float]]:
    """Bootstrap intervals (``LEVEL``) of every statistic, resampling windows."""
    n = scores.windows
    idx = resample_indices(n, resamples, seed)
    ci = {"ppl": _interval(ppl_of(scores.nll[idx], n * scores.predicted))}
    if scores.kld is None:
        return ci
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, resamples, CHUNK):
        rows = idx[start : start + CHUNK]
        stats = _token_stats(scores.kld[rows].reshape(len(rows), -1), scores.top1[rows].reshape(len(rows), -1))
        for name, values in stats.items():
            parts.setdefault(name, []).append(values)
    return ci | {name: _interval(torch.cat(v)) for name, v in parts.items()}


def window_values(scores: TokenScores, statistic: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-window numerator, per-window token count) of a mean-type statistic, for paired differences."""
    counts = torch.full((scores.windows,), float(scores.predicted), dtype=torch.float64)
    if statistic != "nll" and scores.kld is None:
        raise ValueError(f"{statistic} needs the float reference (--metrics kld,top1)")
    if statistic == "nll":
        return scores.nll, counts
    if statistic == "kld_mean":
        return scores.kld.double().sum(dim=1), counts
    if statistic == "top1_agreement":
        return scores.top1.double().sum(dim=1), counts
    raise ValueError(f"no paired interval for {statistic!r}; choose nll, kld_mean or top1_agreement")


@dataclass(frozen=True)
class Difference:
    """``a - b`` of a statistic, with its paired bootstrap interval (``LEVEL``)."""

    statistic: str
    value: float
    ci: list[float]

    def to_json(self) -> dict:
        return {"statistic": self.statistic, "value": self.value, "ci": self.ci}


def _mean_stat(statistic: str, num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    ratio = num.sum(dim=-1) / den.sum(dim=-1)
    return torch.exp(ratio) if statistic == "nll" else ratio  # nll -> perplexity


def paired_difference(a: TokenScores, b: TokenScores, statistic: str, relative: bool = False,
                      resamples: int = RESAMPLES, seed: int = SEED) -> Difference:
    """a - b (``relative``: a / b - 1) of ``statistic`` ('nll' means perplexity) on the same windows,
    with an interval from the same resampled windows for both rows."""
    if (a.windows, a.predicted) != (b.windows, b.predicted):
        raise ValueError(f"paired rows need the same windows, got {a.windows} and {b.windows}")
    (na, da), (nb, db) = window_values(a, statistic), window_values(b, statistic)
    idx = resample_indices(a.windows, resamples, seed)

    def diff(sa, sb):
        return sa / sb - 1 if relative else sa - sb

    value = diff(_mean_stat(statistic, na, da), _mean_stat(statistic, nb, db))
    boot = diff(_mean_stat(statistic, na[idx], da[idx]), _mean_stat(statistic, nb[idx], db[idx]))
    name = "ppl" if statistic == "nll" else statistic
    return Difference(name + (" ratio - 1" if relative else " difference"), float(value), _interval(boot))
