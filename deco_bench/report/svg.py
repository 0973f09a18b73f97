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


def line_plot(series: list[Series], *, title: str, x_label: str, y_label: str, log_x: bool = False,
              width: int = 560, height: int = 320, y_min: float | None = None, y_max: float | None = None,
              x_ticks: list[float] | None = None) -> str:
    """An SVG line plot with axes, ticks, axis labels and a legend. Missing (None/NaN) points are skipped.
    `x_ticks` fixes the x ticks (and the axis range) of a linear axis."""
    ml, mr, mt, mb = 64, 16, 28, 48 + 16 * ((len(series) + 1) // 2)
    pw, ph = width - ml - mr, height - mt - mb
    if ph < 40:
        height, ph = height + 40 - ph, 40
    pts = {i: _finite_points(s, log_x) for i, s in enumerate(series)}
    xs = [p[0] for v in pts.values() for p in v]
    ys = [p[1] for v in pts.values() for p in v]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
           f"<title>{escape(title)}</title>",
           f'<text x="{width / 2:.1f}" y="16" text-anchor="middle" class="plot-title">{escape(title)}</text>']
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
        lx = ml + (i % 2) * (pw / 2)
        ly = mt + ph + 44 + 16 * (i // 2)
        out.append(f'<line x1="{lx:.1f}" y1="{ly - 4}" x2="{lx + 22:.1f}" y2="{ly - 4}" stroke="{color}" '
                   f'stroke-width="2"{dash_attr}{m_attr}/><text x="{lx + 28:.1f}" y="{ly}" class="legend">'
                   f'{escape(s.label)}</text>')
    out.append("</svg>")
    return "".join(out)


def bar_chart(groups: list[str], values: dict[str, list[float | None]], *, title: str, y_label: str,
              width: int = 560, height: int = 280, colors: dict[str, str] | None = None,
              models: dict[str, str] | None = None) -> str:
    """Grouped bars: one group per entry of `groups`, one bar per key of `values` (None: no bar, 'n/a').
    `colors`: {values key: colour} (others cycle the palette); `models`: {values key: model key} (data-model)."""
    colors, models = colors or {}, models or {}

    def color(k: int, label: str) -> str:
        return colors.get(label) or PALETTE[k % len(PALETTE)]

    ml, mr, mt, mb = 64, 16, 28, 40 + 16 * ((len(values) + 1) // 2)
    pw, ph = width - ml - mr, height - mt - mb
    finite = [v for vs in values.values() for v in vs if v is not None and math.isfinite(v)]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
           f"<title>{escape(title)}</title>",
           f'<text x="{width / 2:.1f}" y="16" text-anchor="middle" class="plot-title">{escape(title)}</text>']
    if not finite or not groups:
        out.append(f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle">no data</text></svg>')
        return "".join(out)
    yt = nice_ticks(min(0.0, min(finite)), max(finite))
    lo, hi = yt[0], yt[-1]

    def py(y: float) -> float:
        return mt + ph - (y - lo) / ((hi - lo) or 1.0) * ph

    out.append(f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for t in yt:
        out.append(f'<line x1="{ml - 4}" y1="{py(t):.1f}" x2="{ml + pw}" y2="{py(t):.1f}" stroke="#e5e5e5"/>'
                   f'<text x="{ml - 6}" y="{py(t) + 4:.1f}" text-anchor="end" class="tick">{fmt_tick(t)}</text>')
    out.append(f'<text transform="translate(14 {mt + ph / 2:.1f}) rotate(-90)" text-anchor="middle" '
               f'class="axis-label">{escape(y_label)}</text>')
    gw = pw / len(groups)
    bw = gw * 0.8 / max(len(values), 1)
    for g, name in enumerate(groups):
        out.append(f'<text x="{ml + gw * (g + 0.5):.1f}" y="{mt + ph + 16}" text-anchor="middle" class="tick">'
                   f'{escape(name)}</text>')
        for k, (label, vs) in enumerate(values.items()):
            x = ml + gw * g + gw * 0.1 + bw * k
            v = vs[g] if g < len(vs) else None
            if v is None or not math.isfinite(v):
                out.append(f'<text x="{x + bw / 2:.1f}" y="{py(lo) - 4:.1f}" text-anchor="middle" '
                           f'class="tick">n/a</text>')
                continue
            top, base = py(max(v, 0.0)), py(min(v, 0.0))
            out.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{bw:.1f}" height="{max(base - top, 0.5):.1f}" '
                       f'fill="{color(k, label)}"{_model_attr(models.get(label))}><title>{escape(label)}: {v:.4g}'
                       f'</title></rect>')
    for k, label in enumerate(values):
        lx, ly = ml + (k % 2) * (pw / 2), mt + ph + 34 + 16 * (k // 2)
        out.append(f'<rect x="{lx:.1f}" y="{ly - 9}" width="12" height="10" fill="{color(k, label)}"'
                   f'{_model_attr(models.get(label))}/>'
                   f'<text x="{lx + 18:.1f}" y="{ly}" class="legend">{escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)
