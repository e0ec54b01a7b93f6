"""Chart models for the report: pixel geometry computed here, drawn as inline SVG by the
``charts.html.j2`` template (no JavaScript, no network, no plotting library)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from awq_harness.reports.scales import Scale, log_ticks, nice_ticks, padded_range, tick_label

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#7f7f7f", "#bcbd22")
WIDTH, HEIGHT = 520, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 46


@dataclass
class Series:
    name: str
    points: list[tuple[float, float]]
    dashed: bool = False


@dataclass
class Chart:
    chart_id: str
    title: str
    x_label: str
    y_label: str
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    bars: list[dict] = field(default_factory=list)
    legend: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    plot: tuple[int, int, int, int] = (LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM)


def _finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _y_scale(values: list[float], log: bool, include_zero: bool) -> tuple[Scale, list[float]]:
    low, high = padded_range(values, log, include_zero)
    ticks = log_ticks(low, high) if log else nice_ticks(low, high)
    return Scale(low, high, HEIGHT - BOTTOM, TOP, log), ticks


def _wants_log(values: list[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and max(positive) / min(positive) > 30


def line_chart(chart_id: str, title: str, x_label: str, y_label: str, series: list[Series], *,
               x_log: bool = False, x_names: list[str] | None = None,
               flagged: frozenset[tuple[str, float]] = frozenset()) -> Chart | None:
    """Lines through (x, y) points; ``x_names`` labels integer x positions 0..n-1;
    points named in ``flagged`` as (series name, x) are ringed in red (regressions)."""
    kept = [Series(s.name, [p for p in s.points if _finite(p[0]) and _finite(p[1])], s.dashed) for s in series]
    kept = [s for s in kept if s.points]
    if not kept:
        return None
    xs = [x for s in kept for x, _ in s.points]
    ys = [y for s in kept for _, y in s.points]
    y_log = _wants_log(ys)
    y_scale, y_ticks = _y_scale(ys, y_log, include_zero=False)
    x_scale = _x_scale(xs, x_log, x_names)
    chart = Chart(chart_id, title, x_label, y_label, notes=_dropped_note(series, kept))
    chart.y_ticks = [(y_scale(t), tick_label(t)) for t in y_ticks]
    chart.x_ticks = _x_ticks(x_scale, xs, x_names)
    colors = _series_colors(kept)
    for s in kept:
        chart.lines.append(_line(s, colors[s.name], x_scale, y_scale, x_names, flagged))
        chart.legend.append({"name": s.name, "color": colors[s.name], "dashed": s.dashed})
    if y_log:
        chart.notes.append("y axis is logarithmic")
    return chart


def _x_scale(xs: list[float], log: bool, names: list[str] | None) -> Scale:
    if names is not None:
        return Scale(-0.5, len(names) - 0.5, LEFT, WIDTH - RIGHT)
    low, high = padded_range(xs, log)
    return Scale(low, high, LEFT, WIDTH - RIGHT, log)


def _x_ticks(scale: Scale, xs: list[float], names: list[str] | None) -> list[tuple[float, str]]:
    if names is not None:
        every = max(1, math.ceil(len(names) / 12))
        return [(scale(i), name) for i, name in enumerate(names) if i % every == 0]
    if scale.log:
        return [(scale(x), tick_label(x)) for x in sorted(set(xs))]
    return [(scale(t), tick_label(t)) for t in nice_ticks(scale.low, scale.high)]


def _series_colors(series: list[Series]) -> dict[str, str]:
    """Solid series get palette colours in order; a dashed series shares its solid twin's
    colour when its name starts with that series' name (``gemv bound`` after ``gemv``)."""
    colors: dict[str, str] = {}
    for s in (s for s in series if not s.dashed):
        colors[s.name] = PALETTE[len(colors) % len(PALETTE)]
    for s in (s for s in series if s.dashed):
        twin = next((name for name in colors if s.name.startswith(name)), None)
        colors[s.name] = colors[twin] if twin else "#444444"
    return colors


def _line(s: Series, color: str, x_scale: Scale, y_scale: Scale, names: list[str] | None,
          flagged: frozenset[tuple[str, float]]) -> dict:
    points = sorted(s.points)
    pixels = [(x_scale(x), y_scale(y)) for x, y in points]
    dots = [{"x": px, "y": py, "tip": f"{s.name}: {_x_text(x, names)} → {y:.4g}", "flagged": (s.name, x) in flagged}
            for (px, py), (x, y) in zip(pixels, points, strict=True)]
    return {"name": s.name, "color": color, "dashed": s.dashed,
            "path": " ".join(f"{px},{py}" for px, py in pixels), "dots": [] if s.dashed else dots}


def _x_text(x: float, names: list[str] | None) -> str:
    return names[int(x)] if names is not None else f"{x:g}"


def _dropped_note(given: list[Series], kept: list[Series]) -> list[str]:
    dropped = sum(len(s.points) for s in given) - sum(len(s.points) for s in kept)
    return [f"{dropped} non-finite value(s) not drawn"] if dropped else []


def bar_chart(chart_id: str, title: str, y_label: str, categories: list[str],
              bars: list[tuple[str, list[float | None]]],
              flagged: frozenset[tuple[str, str]] = frozenset()) -> Chart | None:
    """Grouped bars: one group per category, one bar per (name, values) entry; bars named
    in ``flagged`` as (name, category) are outlined in red (regressions)."""
    values = [v for _, vs in bars for v in vs if v is not None and _finite(v)]
    if not values:
        return None
    y_log = _wants_log(values)
    y_scale, y_ticks = _y_scale(values, y_log, include_zero=not y_log)
    chart = Chart(chart_id, title, "", y_label)
    chart.y_ticks = [(y_scale(t), tick_label(t)) for t in y_ticks]
    group_width = (WIDTH - RIGHT - LEFT) / len(categories)
    bar_width = group_width * 0.8 / len(bars)
    chart.x_ticks = [(LEFT + group_width * (i + 0.5), name) for i, name in enumerate(categories)]
    base = y_scale(y_scale.low)
    for index, (name, vs) in enumerate(bars):
        color = PALETTE[index % len(PALETTE)]
        chart.legend.append({"name": name, "color": color, "dashed": False})
        for group, value in enumerate(vs):
            if value is None or not _finite(value):
                continue
            x = LEFT + group_width * (group + 0.1) + bar_width * index
            top = y_scale(value)
            chart.bars.append({"x": round(x, 2), "y": top, "w": round(bar_width - 1, 2), "h": round(base - top, 2),
                               "color": color, "tip": f"{name}, {categories[group]}: {value:.4g}",
                               "label": f"{value:.3g}", "flagged": (name, categories[group]) in flagged})
    if y_log:
        chart.notes.append("y axis is logarithmic")
    return chart
