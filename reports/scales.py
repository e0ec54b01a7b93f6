"""Axis scales and tick positions for the report's inline SVG charts."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    """Maps data values in [low, high] to pixels in [start, end], linearly or logarithmically."""

    low: float
    high: float
    start: float
    end: float
    log: bool = False

    def __call__(self, value: float) -> float:
        lo, hi, v = (math.log(self.low), math.log(self.high), math.log(value)) if self.log \
            else (self.low, self.high, value)
        share = 0.5 if hi == lo else (v - lo) / (hi - lo)
        return round(self.start + share * (self.end - self.start), 2)


def padded_range(values: list[float], log: bool, include_zero: bool = False) -> tuple[float, float]:
    """A [low, high] range around the values, with a little air (never empty or <= 0 on log)."""
    low, high = min(values), max(values)
    if log:
        return (low / 1.25, high * 1.25) if low < high else (low / 2, high * 2)
    if include_zero:
        low = min(low, 0.0)
    span = high - low or abs(high) or 1.0
    return (low if include_zero and low == 0 else low - 0.08 * span), high + 0.08 * span


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering [low, high]."""
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def log_ticks(low: float, high: float) -> list[float]:
    """1, 2 and 5 times powers of ten inside [low, high]; only powers of ten when wide."""
    mantissas = (1, 2, 5) if high / low < 1000 else (1,)
    ticks = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        ticks += [m * 10.0 ** exponent for m in mantissas if low <= m * 10.0 ** exponent <= high]
    return ticks or [low, high]


def tick_label(value: float) -> str:
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.0e}"
    return f"{value:.4g}"
