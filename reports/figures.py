"""Build the report's charts from saved results (one function per chart family)."""
from __future__ import annotations

import math
import os
from collections import defaultdict
from typing import Any, Callable

from awq_harness.reports.charts import Chart, Series, bar_chart, line_chart
from awq_harness.reports.schema import Results

REFERENCE_METHODS = ("fp", "fp16", "bf16", "fp32", "float")
METHOD_ORDER = ("fp", "rtn", "gptq", "awq")
MAX_TREND_SERIES = 10


def _group(entries: list[dict[str, Any]], *fields: str) -> dict[tuple, list[dict[str, Any]]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        groups[tuple(entry.get(name) for name in fields)].append(entry)
    return groups


def _group_label(group_size: Any) -> str:
    return "per-channel" if group_size in (None, -1, 0) else f"g{group_size}"


def speedup_charts(results: Results, regressed: set[tuple] = frozenset()) -> list[Chart]:
    """One chart per (kernel, group size); ``regressed`` holds (kernel, shape, batch, group) keys."""
    charts = []
    for (kernel, group_size), entries in sorted(_group(results.sections["kernel_speedups"], "kernel",
                                                       "group_size").items(), key=str):
        by_shape = _group(entries, "shape")
        series = [Series(str(shape), [(e["batch"], e["speedup"]) for e in rows]) for (shape,), rows in by_shape.items()]
        series += _bound_series(by_shape)
        flagged = frozenset((str(shape), batch) for k, shape, batch, g in regressed if (k, g) == (kernel, group_size))
        dry = " (dry run: no speed claim)" if all(e.get("dry_run") for e in entries) else ""
        chart = line_chart(f"speedup-{kernel}-{group_size}", f"{kernel} ({_group_label(group_size)}): speed-up "
                           f"over fp16 vs batch size{dry}", "batch size M", "speed-up (x)", series, x_log=True,
                           flagged=flagged)
        charts += [chart] if chart else []
    return charts


def _bound_series(by_shape: dict[tuple, list[dict[str, Any]]]) -> list[Series]:
    """One dashed 'roofline bound' line when all shapes share it, else one per shape."""
    bounds = {shape: sorted((e["batch"], e["bound"]) for e in rows) for (shape,), rows in by_shape.items()}
    if len({tuple(points) for points in bounds.values()}) == 1:
        return [Series("roofline bound", next(iter(bounds.values())), dashed=True)]
    return [Series(f"{shape} bound", points, dashed=True) for shape, points in bounds.items()]


def perplexity_chart(results: Results, regressed: set[tuple] = frozenset()) -> Chart | None:
    """Grouped bars per bits / group size, one bar per method; the float reference appears in
    every group. ``regressed`` holds compare.PERPLEXITY_KEY tuples."""
    entries = results.sections["perplexity"]
    with_model = len({e["model"] for e in entries}) > 1
    quantised = sorted((e for e in entries if not _is_reference(e)),
                       key=lambda e: (str(e["model"]), -e["bits"], _group_label(e["group_size"])))
    categories = list(dict.fromkeys(_setting(e, with_model) for e in quantised)) \
        or sorted({str(e["model"]) for e in entries})
    values = {(e["method"], _setting(e, with_model)): e["ppl"] for e in quantised}
    for reference in (e for e in entries if _is_reference(e)):
        for category in categories:
            if not with_model or category == str(reference["model"]) or category.startswith(f"{reference['model']} "):
                values.setdefault((reference["method"], category), reference["ppl"])
    methods = sorted({e["method"] for e in entries}, key=_method_rank)
    bars = [(method, [values.get((method, category)) for category in categories]) for method in methods]
    flagged = frozenset((key[1], _setting(dict(model=key[0], bits=key[2], group_size=key[3]), with_model))
                        for key in regressed)
    return bar_chart("perplexity", "Perplexity per method", "perplexity (lower is better)", categories, bars,
                     flagged=flagged)


def _is_reference(entry: dict[str, Any]) -> bool:
    return str(entry["method"]).lower() in REFERENCE_METHODS or entry["bits"] >= 16


def _setting(entry: dict[str, Any], with_model: bool) -> str:
    text = f"w{entry['bits']} {_group_label(entry['group_size'])}"
    return f"{entry['model']} {text}" if with_model else text


def _method_rank(method: str) -> tuple[int, str]:
    name = str(method).lower()
    return (METHOD_ORDER.index(name) if name in METHOD_ORDER else len(METHOD_ORDER), name)


def layer_error_charts(results: Results) -> list[Chart]:
    charts = []
    for (model,), entries in _group(results.sections["layer_errors"], "model").items():
        names = list(dict.fromkeys(str(e["layer"]) for e in entries))
        position = {name: i for i, name in enumerate(names)}
        prefix = _common_prefix(names)
        series = [Series(str(mode or "relative error"), [(position[str(e["layer"])], e["rel_error"]) for e in rows])
                  for (mode,), rows in _group(entries, "mode").items()]
        chart = line_chart(f"layers-{model}", f"Per-layer quantisation error: {model}",
                           f"layer ({prefix}N)" if prefix else "layer", "relative error", series,
                           x_names=[name[len(prefix):] for name in names])
        charts += [chart] if chart else []
    return charts


def setting_label(model: Any, method: Any, bits: Any, group_size: Any, with_model: bool = False) -> str:
    """'awq w4 g64' (with the model's name first when a report holds several models)."""
    parts = [str(method)] + ([f"w{bits}", _group_label(group_size)] if bits is not None and bits < 16 else [])
    return " ".join(([str(model)] if with_model else []) + parts)


def _common_prefix(names: list[str]) -> str:
    """'layers.' for layers.0 ... layers.29 (never cutting into the numbers)."""
    prefix = os.path.commonprefix(names) if len(names) > 1 else ""
    return prefix[:len(prefix.rstrip("0123456789"))]


def calibration_chart(results: Results, regressed: set[tuple] = frozenset()) -> Chart | None:
    """Perplexity vs calibration samples; ``regressed`` holds compare.CALIBRATION_KEY tuples."""
    entries = results.sections["calibration_curve"]
    with_model = len({e["model"] for e in entries}) > 1
    groups = _group(entries, "model", "method", "bits", "group_size")
    series = [Series(setting_label(*key, with_model), [(e["n_samples"], e["ppl"]) for e in rows])
              for key, rows in groups.items()]
    flagged = frozenset((setting_label(*key[:4], with_model), key[4]) for key in regressed)
    return line_chart("calibration", "Calibration-size curve", "calibration samples", "perplexity",
                      series, x_log=True, flagged=flagged)


def trend_charts(runs: list[Results]) -> list[Chart]:
    if len(runs) < 2:
        return []
    names = [run.short_label for run in runs]
    with_model = len({e["model"] for run in runs for e in run.sections["perplexity"]}) > 1

    def ppl_label(*key: Any) -> str:
        return setting_label(*key, with_model=with_model)
    charts = [line_chart("trend-ppl", "Perplexity over runs", "run", "perplexity",
                         _trend_series(runs, "perplexity", ("model", "method", "bits", "group_size"), "ppl",
                                       ppl_label), x_names=names),
              line_chart("trend-speedup", "Mean speed-up over runs (geometric mean over shapes and batches)",
                         "run", "speed-up (x)", _trend_series(runs, "kernel_speedups", ("kernel", "group_size"),
                                                              "speedup", _kernel_label, geometric=True),
                         x_names=names)]
    return [chart for chart in charts if chart]


def _trend_series(runs: list[Results], section: str, fields: tuple[str, ...], metric: str,
                  label: Callable[..., str], geometric: bool = False) -> list[Series]:
    points: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    for position, run in enumerate(runs):
        for key, rows in _group(run.sections[section], *fields).items():
            points[key].append((position, _summary([r[metric] for r in rows], geometric)))
    return [Series(label(*key), pts) for key, pts in list(points.items())[:MAX_TREND_SERIES]]


def _kernel_label(kernel: Any, group_size: Any) -> str:
    return f"{kernel} {_group_label(group_size)}"


def _summary(values: list[float], geometric: bool) -> float:
    if geometric and all(v > 0 for v in values):
        return math.exp(sum(math.log(v) for v in values) / len(values))
    return sum(values) / len(values)
