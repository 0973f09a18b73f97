import math
import re

import pytest

from deco_bench.report.svg import Series, hbar_chart, line_plot, log_ticks, nice_ticks, text_width, wrap


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
    assert "no data" in hbar_chart(["a"], {"m": [None]}, title="t", x_label="x")


def _bars(svg: str) -> list[tuple[float, float, float]]:
    """(x, y, width) of every bar (the frame has fill="none"; legend swatches are 12 px wide and come last)."""
    return [tuple(map(float, m)) for m in
            re.findall(r'<rect x="([^"]+)" y="([^"]+)" width="([^"]+)" height="14.0" fill="#', svg)]


def test_bar_lengths_proportional_to_values_and_each_value_written():
    svg = hbar_chart(["g"], {"a": [1.0], "b": [2.0]}, title="t", x_label="x")
    (xa, ya, wa), (xb, yb, wb) = _bars(svg)
    assert xa == xb and yb > ya and math.isclose(wb, 2 * wa, rel_tol=0.02)
    assert ">1</text>" in svg and ">2</text>" in svg and 'class="legend">a<' in svg


def _texts(svg: str) -> list[tuple[float, float, str]]:
    return [(float(x), float(y), t) for x, y, t in re.findall(r'<text x="([^"]+)" y="([^"]+)"[^>]*>([^<]*)</text>', svg)]


def test_long_group_labels_wrap_and_rows_never_share_a_line():
    groups = ["euler100_cfg, batch 64, a rather long sampling setting name", "b", "euler50, batch 1"]
    svg = hbar_chart(groups, {"DeCo": [1.0, 2.0, None], "Baseline": [3.0, 4.0, 5.0]}, title="t", x_label="x",
                     width=400)
    labels = [t for t in _texts(svg) if t[2] in wrap(groups[0], 400 * 0.38, 10) + groups[1:]]
    assert len(labels) > len(groups)  # the first label took more than one line
    ys = sorted(y for _, y, _ in labels)
    assert all(b - a >= 11 for a, b in zip(ys, ys[1:]))  # 10 px text, one line each
    assert all(x + 1 < min(bx for bx, _, _ in _bars(svg)) for x, _, _ in labels)  # right-aligned left of the bars
    assert "n/a" in svg and len(_bars(svg)) == 5
    height = int(re.search(r'height="(\d+)"', svg).group(1))
    assert max(y for _, y, _ in _texts(svg)) < height  # the height grew with the rows


def test_wrap_breaks_at_spaces_within_the_width():
    lines = wrap("one two three four five six", text_width("one two three", 10), 10)
    assert lines == ["one two three", "four five six"]
    assert wrap("unbreakable", 1, 10) == ["unbreakable"]


def test_interval_band_drawn_under_the_line_and_inside_the_range():
    svg = line_plot([Series("a", [0, 1, 2], [1.0, 2.0, 3.0], lo=[0.5, 1.5, None], hi=[1.5, 2.5, None], model="m")],
                    title="t", x_label="x", y_label="y")
    band = re.search(r'<polygon points="([^"]+)"[^>]*class="band" data-model="m"', svg)
    assert band and svg.index("<polygon") < svg.index("<polyline")
    ring = [tuple(map(float, p.split(","))) for p in band.group(1).split()]
    assert len(ring) == 4  # the two points with an interval, upper edge then lower edge
    line = dict(_points(svg))
    for x, y in ring[:2]:
        assert y < line[x]  # the upper edge lies above the line (smaller y)
    assert "polygon" not in line_plot([Series("a", [0, 1], [1.0, 2.0])], title="t", x_label="x", y_label="y")


def test_model_colours_are_fixed_by_position_and_used_by_both_chart_kinds():
    from deco_bench.report.svg import PALETTE, model_colors

    colours = model_colors(["deco", "baseline", "deco", *(f"m{i}" for i in range(7))])
    assert colours["deco"] == PALETTE[0] and colours["baseline"] == PALETTE[1] and colours["m6"] == PALETTE[0]
    line = line_plot([Series("B", [0, 1], [1.0, 2.0], color=colours["baseline"], model="baseline")],
                     title="t", x_label="x", y_label="y")
    assert f'stroke="{PALETTE[1]}" stroke-width="2" data-model="baseline"' in line
    bars = hbar_chart(["g"], {"DeCo": [1.0], "Base": [2.0]}, title="t", x_label="x",
                      colors={"Base": colours["baseline"], "DeCo": colours["deco"]},
                      models={"Base": "baseline", "DeCo": "deco"})
    fills = re.findall(r'fill="(#[0-9A-F]{6})" data-model="(\w+)"', bars)
    assert set(fills) == {(PALETTE[0], "deco"), (PALETTE[1], "baseline")} and len(fills) == 4  # 2 bars, 2 swatches
