"""reports.scales / charts / figures: the geometry behind the inline SVG charts."""
import math

import pytest
from report_samples import good_run

from awq_harness.reports.charts import Series, bar_chart, line_chart
from awq_harness.reports.figures import perplexity_chart, speedup_charts
from awq_harness.reports.scales import Scale, log_ticks, nice_ticks
from awq_harness.reports.schema import Results


def results_with(**sections) -> Results:
    doc = good_run()
    full = {name: [] for name in doc["sections"]} | sections
    return Results("mem.json", doc["run"], doc["tests"], full)


def test_nice_ticks_are_round_and_cover_the_range():
    assert nice_ticks(0, 9.7) == [0, 2, 4, 6, 8]
    assert nice_ticks(0.013, 0.052) == pytest.approx([0.02, 0.03, 0.04, 0.05])


def test_log_ticks():
    assert log_ticks(1, 30) == [1, 2, 5, 10, 20]
    assert log_ticks(10, 200000) == [10, 100, 1000, 10000, 100000]


def test_log_scale_puts_the_geometric_mean_in_the_middle():
    scale = Scale(1, 1024, 0, 100, log=True)
    assert scale(1) == 0 and scale(1024) == 100 and scale(32) == 50


def test_batches_are_evenly_spaced_on_the_log_axis():
    chart = line_chart("c", "t", "x", "y", [Series("s", [(1, 3.0), (4, 2.9), (16, 2.5), (64, 1.5)])], x_log=True)
    xs = [dot["x"] for dot in chart.lines[0]["dots"]]
    gaps = [b - a for a, b in zip(xs, xs[1:], strict=False)]
    assert max(gaps) - min(gaps) < 0.05 and gaps[0] > 0


def test_higher_values_are_drawn_higher():
    chart = line_chart("c", "t", "x", "y", [Series("s", [(0, 1.0), (1, 2.0)])])
    low, high = chart.lines[0]["dots"]
    assert high["y"] < low["y"]


def test_non_finite_points_are_dropped_and_said():
    chart = line_chart("c", "t", "x", "y", [Series("s", [(1, 2.0), (2, math.nan), (3, math.inf)])])
    assert len(chart.lines[0]["dots"]) == 1 and chart.notes == ["2 non-finite value(s) not drawn"]
    assert line_chart("c", "t", "x", "y", [Series("s", [(1, math.nan)])]) is None


def test_wide_ranges_switch_to_a_log_axis():
    chart = bar_chart("p", "t", "ppl", ["w4 g64"], [("fp", [31.9]), ("autoawq", [86000.0])])
    assert "y axis is logarithmic" in chart.notes
    fp_bar, broken_bar = chart.bars
    assert fp_bar["h"] > 0 and broken_bar["h"] > fp_bar["h"]


def test_shared_bound_is_one_dashed_line_at_the_bound():
    rows = [{"kernel": "gemv", "shape": shape, "batch": m, "group_size": 128, "speedup": 3.0 / m, "bound": 3.85}
            for shape in ("a", "b") for m in (1, 4)]
    (chart,) = speedup_charts(results_with(kernel_speedups=rows))
    bounds = [line for line in chart.lines if line["dashed"]]
    assert [line["name"] for line in bounds] == ["roofline bound"]
    assert all(line["dots"] == [] for line in bounds)


def test_dry_run_charts_say_so():
    rows = [{"kernel": "gemv", "shape": "dry.square", "batch": m, "group_size": 64, "speedup": 1e-4, "bound": 3.5,
             "dry_run": True} for m in (1, 4)]
    (chart,) = speedup_charts(results_with(kernel_speedups=rows))
    assert chart.title.endswith("(dry run: no speed claim)")


def test_different_bounds_get_one_line_per_shape():
    rows = [{"kernel": "gemm", "shape": shape, "batch": m, "group_size": 64, "speedup": 2.0, "bound": bound}
            for shape, bound in (("a", 3.7), ("b", 3.5)) for m in (1, 4)]
    (chart,) = speedup_charts(results_with(kernel_speedups=rows))
    assert sorted(line["name"] for line in chart.lines if line["dashed"]) == ["a bound", "b bound"]


def test_float_reference_is_repeated_only_in_its_own_models_groups():
    def row(model, method, bits, ppl):
        return {"model": model, "method": method, "bits": bits, "group_size": 64, "ppl": ppl}
    rows = [row("m1", "fp", 16, 10.0), row("m1", "awq", 4, 11.0), row("m1", "awq", 3, 13.0),
            row("m2", "fp", 16, 20.0), row("m2", "awq", 4, 22.0)]
    chart = perplexity_chart(results_with(perplexity=rows))
    assert [label for _, label in chart.x_ticks] == ["m1 w4 g64", "m1 w3 g64", "m2 w4 g64"]
    assert sorted(bar["tip"] for bar in chart.bars if bar["tip"].startswith("fp")) == [
        "fp, m1 w3 g64: 10", "fp, m1 w4 g64: 10", "fp, m2 w4 g64: 20"]
