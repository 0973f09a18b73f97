import math
import re

import pytest

from deco_bench.report.svg import Series, bar_chart, line_plot, log_ticks, nice_ticks


def test_nice_ticks_cover_range_with_round_steps():
    t = nice_ticks(0.13, 0.91)
    assert t[0] <= 0.13 and t[-1] >= 0.91
    steps = {round(b - a, 9) for a, b in zip(t, t[1:])}
    assert steps == {0.2}


def test_log_ticks_are_1_2_5_decades_inside_range():
    assert log_ticks(200_000, 4_000_000) == [200_000, 500_000, 1_000_000, 2_000_000]
    with pytest.raises(ValueError):
        log_ticks(0, 10)


def _points(svg: str) -> list[tuple[float, float]]:
    d = re.search(r'<polyline points="([^"]+)"', svg).group(1)
    return [tuple(map(float, p.split(","))) for p in d.split()]


def test_line_plot_maps_values_monotonically_and_log_x_spaces_decades_equally():
    svg = line_plot([Series("a", [1e3, 1e4, 1e5], [3.0, 2.0, 1.0])], title="t", x_label="x", y_label="y",
                    log_x=True)
    (x0, y0), (x1, y1), (x2, y2) = _points(svg)
    assert math.isclose(x1 - x0, x2 - x1, abs_tol=0.15)  # equal decades -> equal pixels
    assert y0 < y1 < y2  # larger value -> higher on the page (smaller y)
    assert 'width="560"' in svg and "(log scale)" in svg


def test_line_plot_skips_missing_points_and_escapes_labels():
    svg = line_plot([Series("<b>&", [0, 1, 2], [1.0, None, float("nan")])], title="t<", x_label="x",
                    y_label="y")
    assert "&lt;b&gt;&amp;" in svg and "<b>" not in svg and "t&lt;" in svg
    assert "<polyline" not in svg and svg.count("<circle") == 1


def test_empty_plot_says_no_data():
    assert "no data" in line_plot([], title="t", x_label="x", y_label="y")
    assert "no data" in bar_chart(["a"], {"m": [None]}, title="t", y_label="y")


def test_bar_heights_proportional_to_values():
    svg = bar_chart(["g"], {"a": [1.0], "b": [2.0]}, title="t", y_label="y")
    h = [float(v) for v in re.findall(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)" fill="#', svg)][:2]
    # the two bars (the frame has fill="none"; legend swatches come last)
    assert math.isclose(h[1], 2 * h[0], rel_tol=0.02)


def test_model_colours_are_fixed_by_position_and_used_by_both_chart_kinds():
    from deco_bench.report.svg import PALETTE, model_colors

    colours = model_colors(["deco", "baseline", "deco", *(f"m{i}" for i in range(7))])
    assert colours["deco"] == PALETTE[0] and colours["baseline"] == PALETTE[1] and colours["m6"] == PALETTE[0]
    line = line_plot([Series("B", [0, 1], [1.0, 2.0], color=colours["baseline"], model="baseline")],
                     title="t", x_label="x", y_label="y")
    assert f'stroke="{PALETTE[1]}" stroke-width="2" data-model="baseline"' in line
    bars = bar_chart(["g"], {"DeCo": [1.0], "Base": [2.0]}, title="t", y_label="y",
                     colors={"Base": colours["baseline"], "DeCo": colours["deco"]},
                     models={"Base": "baseline", "DeCo": "deco"})
    fills = re.findall(r'fill="(#[0-9A-F]{6})" data-model="(\w+)"', bars)
    assert set(fills) == {(PALETTE[0], "deco"), (PALETTE[1], "baseline")} and len(fills) == 4  # 2 bars, 2 swatches
