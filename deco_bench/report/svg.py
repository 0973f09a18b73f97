"""Hand-written inline SVG plots for the report: a line plot (linear or log x) and a grouped bar chart.

The report is one self-contained HTML file that opens from disk with no network, so plots are SVG text written
into the page (no matplotlib, no scripts, no fonts to fetch). Every function here is pure: data in, markup out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

# Colour-blind-safe palette (Okabe-Ito). A model's colour is fixed once for the whole report (model_colors: by its
# position in params `models:`), so DeCo has the same colour in every chart; series without one cycle the palette.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
DASHES = {"solid": "", "dashed": "6 4", "dotted": "2 3"}


def model_colors(keys) -> dict[str, str]:
    """{model key: colour}: the i-th key gets PALETTE[i] (cycled past the palette's length). Pass params `models:`
    keys first, then any other key a chart may show, so the mapping is the same for every chart of a report."""
    return {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(dict.fromkeys(keys))}


def _model_attr(key: str | None) -> str:
    return f' data-model="{escape(key)}"' if key else ""


@dataclass(frozen=True)
class Series:
    label: str
    x: list[float]
    y: list[float | None]
    style: str = "solid"  # solid | dashed | dotted
    markers: bool = True
    color: str | None = None
    extra: dict = field(default_factory=dict)
    model: str | None = None  # the model key this series shows (written as data-model on its marks and legend)
    lo: list[float | None] | None = None  # an interval around y (both or neither): drawn as a shaded band
    hi: list[float | None] | None = None


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"ticks need finite bounds, got {lo}, {hi}")
    if hi <= lo:
        hi = lo + (abs(lo) if lo else 1.0)
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks, v = [], first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Decade ticks with 2 and 5 in between, covering [lo, hi] (lo > 0)."""
    if lo <= 0:
        raise ValueError(f"a log axis needs positive values, got {lo}")
    ticks = []
    for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            v = m * 10.0 ** k
            if lo / 1.0001 <= v <= hi * 1.0001:
                ticks.append(v)
    return ticks or [lo, hi]


def fmt_tick(v: float) -> str:
    """Short tick labels: 200K, 1.6M, 0.25, 12."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}K"
    return f"{v:.4g}"


def _finite_points(s: Series, log_x: bool) -> list[tuple[float, float]]:
    pts = []
    for x, y in zip(s.x, s.y):
        if x is None or y is None or not math.isfinite(x) or not math.isfinite(y) or (log_x and x <= 0):
            continue
        pts.append((float(x), float(y)))
    return pts


def _band(s: Series, log_x: bool) -> list[tuple[float, float, float]]:
    """(x, lo, hi) of the points of `s` with a finite interval (none without s.lo and s.hi)."""
    if s.lo is None or s.hi is None:
        return []
    return [(float(x), float(lo), float(hi)) for x, lo, hi in zip(s.x, s.lo, s.hi)
            if None not in (x, lo, hi) and all(map(math.isfinite, (x, lo, hi))) and not (log_x and x <= 0)]


def line_plot(series: list[Series], *, title: str, x_label: str, y_label: str, log_x: bool = False,
              width: int = 560, height: int = 320, y_min: float | None = None, y_max: float | None = None,
              x_ticks: list[float] | None = None) -> str:
    """An SVG line plot with axes, ticks, axis labels and a legend. Missing (None/NaN) points are skipped; a series
    with lo/hi gets its interval as a shaded band. `x_ticks` fixes the x ticks (and the axis range) of a linear
    axis. A long title wraps; legend labels too long for two columns take one column."""
    title_lines = wrap(title, width - 16, 12)
    two_cols = all(28 + text_width(s.label, 10) + 8 <= (width - 80) / 2 for s in series)
    legend_rows = (len(series) + 1) // 2 if two_cols else len(series)
    ml, mr, mt, mb = 64, 16, 12 + 16 * len(title_lines), 48 + 16 * legend_rows
    height += mt - 28 + 16 * (legend_rows - (len(series) + 1) // 2)
    pw, ph = width - ml - mr, height - mt - mb
    if ph < 40:
        height, ph = height + 40 - ph, 40
    pts = {i: _finite_points(s, log_x) for i, s in enumerate(series)}
    bands = {i: _band(s, log_x) for i, s in enumerate(series)}
    xs = [p[0] for v in pts.values() for p in v]
    ys = [p[1] for v in pts.values() for p in v] + [y for v in bands.values() for b in v for y in b[1:]]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
           f"<title>{escape(title)}</title>", _text_lines(title_lines, width / 2, 16, 12, "plot-title", "middle")]
    if not xs:
        out.append(f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle">no data</text></svg>')
        return "".join(out)
    lo_y = min(ys) if y_min is None else y_min
    hi_y = max(ys) if y_max is None else y_max
    yt = nice_ticks(lo_y, hi_y)
    lo_y, hi_y = min(yt[0], lo_y), max(yt[-1], hi_y)
    if log_x:
        xt = log_ticks(min(xs), max(xs))
        lo_x, hi_x = math.log10(min(xs + xt)), math.log10(max(xs + xt))
        tx = math.log10
    else:
        xt = list(x_ticks) if x_ticks else nice_ticks(min(xs), max(xs))
        lo_x, hi_x = min(xt[0], min(xs)), max(xt[-1], max(xs))
        tx = float
    span_x = (hi_x - lo_x) or 1.0
    span_y = (hi_y - lo_y) or 1.0

    def px(x: float) -> float:
        return ml + (tx(x) - lo_x) / span_x * pw

    def py(y: float) -> float:
        return mt + ph - (y - lo_y) / span_y * ph

    out.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for t in yt:
        y = py(t)
        out.append(f'<line x1="{ml - 4}" y1="{y:.1f}" x2="{ml + pw}" y2="{y:.1f}" stroke="#e5e5e5"/>'
                   f'<text x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{fmt_tick(t)}</text>')
    for t in xt:
        x = px(t)
        out.append(f'<line x1="{x:.1f}" y1="{mt}" x2="{x:.1f}" y2="{mt + ph + 4}" stroke="#e5e5e5"/>'
                   f'<text x="{x:.1f}" y="{mt + ph + 16}" text-anchor="middle" class="tick">{fmt_tick(t)}</text>')
    out.append(f'<text x="{ml + pw / 2:.1f}" y="{mt + ph + 32}" text-anchor="middle" class="axis-label">'
               f'{escape(x_label)}{" (log scale)" if log_x else ""}</text>')
    out.append(f'<text transform="translate(14 {mt + ph / 2:.1f}) rotate(-90)" text-anchor="middle" '
               f'class="axis-label">{escape(y_label)}</text>')
    for i, s in enumerate(series):  # bands first, under every line
        if len(bands[i]) > 1:
            b = bands[i]
            ring = [(px(x), py(hi)) for x, _, hi in b] + [(px(x), py(lo)) for x, lo, _ in reversed(b)]
            out.append(f'<polygon points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in ring)}" '
                       f'fill="{s.color or PALETTE[i % len(PALETTE)]}" fill-opacity="0.15" stroke="none" '
                       f'class="band"{_model_attr(s.model)}/>')
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        dash = DASHES.get(s.style, "")
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        m_attr = _model_attr(s.model)
        p = pts[i]
        if len(p) > 1:
            d = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in p)
            out.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"{dash_attr}{m_attr}/>')
        if s.markers or len(p) == 1:
            out.extend(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"{m_attr}/>' for x, y in p)
        lx = ml + (i % 2) * (pw / 2) if two_cols else ml
        ly = mt + ph + 44 + 16 * (i // 2 if two_cols else i)
        out.append(f'<line x1="{lx:.1f}" y1="{ly - 4}" x2="{lx + 22:.1f}" y2="{ly - 4}" stroke="{color}" '
                   f'stroke-width="2"{dash_attr}{m_attr}/><text x="{lx + 28:.1f}" y="{ly}" class="legend">'
                   f'{escape(s.label)}</text>')
    out.append("</svg>")
    return "".join(out)


# Text widths are estimated, not measured (no fonts here): a generous average advance per character of the report's
# sans-serif font, so labels are laid out with room to spare (the browser test measures that none overlap).
CHAR_W = 0.62


def text_width(text: str, size: float) -> float:
    return len(text) * size * CHAR_W


def wrap(text: str, max_width: float, size: float) -> list[str]:
    """`text` in lines of at most `max_width` pixels (estimated) at font `size`, broken at spaces; a single word
    longer than that keeps a line of its own."""
    lines: list[str] = []
    for word in text.split():
        if lines and text_width(f"{lines[-1]} {word}", size) <= max_width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def _text_lines(lines: list[str], x: float, y: float, size: float, cls: str, anchor: str = "start") -> str:
    """One <text> per line (each with its own box, so an overlap check sees every line), `size` px apart."""
    return "".join(f'<text x="{x:.1f}" y="{y + i * (size + 2):.1f}" text-anchor="{anchor}" class="{cls}">'
                   f"{escape(line)}</text>" for i, line in enumerate(lines))


def hbar_chart(groups: list[str], values: dict[str, list[float | None]], *, title: str, x_label: str,
               width: int = 560, colors: dict[str, str] | None = None, models: dict[str, str] | None = None,
               digits: int = 3) -> str:
    """Horizontal grouped bars, one unit per chart: a row of bars per entry of `groups` (its label, wrapped, left
    of the bars), one bar per key of `values` (None: 'n/a'), each bar's value written at its end, and a legend when
    there is more than one key. `colors`: {values key: colour} (others cycle the palette); `models`: {values key:
    model key} (data-model). The height follows from the rows, so labels never have to share a line."""
    colors, models = colors or {}, models or {}
    keys = list(values)

    def color(k: int, label: str) -> str:
        return colors.get(label) or PALETTE[k % len(PALETTE)]

    tick, bar_h, bar_gap, group_gap = 10.0, 14.0, 3.0, 10.0
    finite = [v for vs in values.values() for v in vs if v is not None and math.isfinite(v)]
    title_lines = wrap(title, width - 16, 12)
    mt = 12 + 16 * len(title_lines)

    def svg(body: list[str], height: float) -> str:
        h = math.ceil(height)
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{h}" '
                f'viewBox="0 0 {width} {h}" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
                + _text_lines(title_lines, width / 2, 20, 12, "plot-title", "middle") + "".join(body) + "</svg>")

    if not finite or not groups:
        return svg([f'<text x="{width / 2:.1f}" y="{mt + 20}" text-anchor="middle">no data</text>'], mt + 40)
    labels = {g: wrap(g, width * 0.38, tick) for g in groups}
    ml = 8 + max(text_width(line, tick) for ls in labels.values() for line in ls) + 8
    value_text = {(k, g): fmt_tick(round(vs[g], digits)) if vs[g] is not None and math.isfinite(vs[g]) else "n/a"
                  for k, vs in values.items() for g in range(min(len(vs), len(groups)))}
    mr = max(text_width(t, tick) for t in value_text.values()) + 12
    pw = width - ml - mr
    xt = nice_ticks(0.0, max(max(finite), 0.0) or 1.0)
    hi = xt[-1]

    def px(v: float) -> float:
        return ml + max(v, 0.0) / hi * pw

    out: list[str] = []
    y = mt
    rows = []
    for g, name in enumerate(groups):
        n_lines = len(labels[name])
        bars_h = len(keys) * bar_h + (len(keys) - 1) * bar_gap
        gh = max(bars_h, n_lines * (tick + 2))
        rows.append((g, name, y, gh, bars_h))
        y += gh + group_gap
    ph = y - group_gap - mt + 8
    out.append(f'<rect x="{ml:.1f}" y="{mt - 4}" width="{pw:.1f}" height="{ph:.1f}" fill="none" stroke="#999"/>')
    for t in xt:
        out.append(f'<line x1="{px(t):.1f}" y1="{mt - 4}" x2="{px(t):.1f}" y2="{mt - 4 + ph + 4:.1f}" stroke="#e5e5e5"/>')
    for g, name, gy, gh, bars_h in rows:
        n_lines = len(labels[name])
        ly = gy + gh / 2 - (n_lines - 1) * (tick + 2) / 2 + tick * 0.35
        out.append(_text_lines(labels[name], ml - 8, ly, tick, "tick", "end"))
        by = gy + (gh - bars_h) / 2
        for k, label in enumerate(keys):
            vs = values[label]
            v = vs[g] if g < len(vs) else None
            top = by + k * (bar_h + bar_gap)
            text = value_text.get((label, g), "n/a")
            if v is None or not math.isfinite(v):
                out.append(f'<text x="{ml + 4:.1f}" y="{top + bar_h * 0.75:.1f}" class="tick">n/a</text>')
                continue
            w = max(px(v) - ml, 0.5)
            out.append(f'<rect x="{ml:.1f}" y="{top:.1f}" width="{w:.1f}" height="{bar_h:.1f}" '
                       f'fill="{color(k, label)}"{_model_attr(models.get(label))}><title>{escape(label)}: {v:.4g}'
                       f"</title></rect>"
                       f'<text x="{ml + w + 4:.1f}" y="{top + bar_h * 0.75:.1f}" class="tick">{escape(text)}</text>')
    base = mt - 4 + ph
    for t in xt:
        out.append(f'<text x="{px(t):.1f}" y="{base + 14:.1f}" text-anchor="middle" class="tick">{fmt_tick(t)}</text>')
    out.append(f'<text x="{ml + pw / 2:.1f}" y="{base + 30:.1f}" text-anchor="middle" class="axis-label">'
               f"{escape(x_label)}</text>")
    height = base + 40
    if len(keys) > 1:  # legend: swatch + label, wrapped onto as many rows as the width needs
        lx, ly = ml, base + 52
        for k, label in enumerate(keys):
            item_w = 18 + text_width(label, tick) + 16
            if lx > ml and lx + item_w > width - 8:
                lx, ly = ml, ly + 16
            out.append(f'<rect x="{lx:.1f}" y="{ly - 9:.1f}" width="12" height="10" fill="{color(k, label)}"'
                       f'{_model_attr(models.get(label))}/><text x="{lx + 18:.1f}" y="{ly:.1f}" class="legend">'
                       f"{escape(label)}</text>")
            lx += item_w
        height = ly + 10
    return svg(out, height)
