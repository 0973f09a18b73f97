"""The spectrum section (spectrum/spectrum.json): DCT energy curves per model and tensor (Fig. 4 style), their
summaries, and the paper's Fig. 4 read-offs."""

from __future__ import annotations

from typing import Any

from deco_bench import paper
from deco_bench.report.fmt import fmt
from deco_bench.report.inputs import PATHS, missing_keys, not_ran, unrecognised
from deco_bench.report.svg import Series, line_plot


def spectrum_section(spec: Any, colors: dict | None = None) -> dict:
    """spectrum/spectrum.json (deco_bench/stages/spectrum.py): curves per model x tensor + summaries."""
    if spec is None:
        return not_ran("spectrum", PATHS["spectrum"])
    missing = missing_keys(spec, ("models", "num_images", "num_steps", "cut"))
    if missing:
        return unrecognised("spectrum", PATHS["spectrum"], missing)
    series, summary = [], []
    style = {"dit_out": "solid", "velocity": "dotted"}
    names = {"dit_out": "DiT output", "velocity": "pixel velocity"}
    for m, tensors in spec["models"].items():
        for t, s in (tensors or {}).items():
            if not isinstance(s, dict) or "curve" not in s:
                return unrecognised("spectrum", PATHS["spectrum"], [f"models.{m}.{t}.curve"])
            series.append(Series(f"{m} {names.get(t, t)}", list(range(len(s["curve"]))), s["curve"],
                                 style=style.get(t, "dashed"), markers=False, color=(colors or {}).get(m), model=m))
            summary.append({"model": m, "tensor": names.get(t, t), "high_share": fmt(s.get("high_share"), 4),
                            "mean_log_high": fmt(s.get("mean_log_high"), 3), "num_blocks": fmt(s.get("num_blocks"))})
    ratios = [{"tensor": names.get(t, t), "high_share": fmt(r.get("high_share"), 3),
               "mean_log_high": fmt(r.get("mean_log_high"), 3)}
              for t, r in (spec.get("ratio_deco_over_baseline") or {}).items()]
    svg = line_plot(series, title=f"DCT energy (Fig. 4 style), {spec['num_images']} images × {spec['num_steps']} "
                                  f"steps, {spec.get('scale', '?')} scale", x_label="zig-zag DCT index",
                    y_label="normalised log energy", y_min=0.0, y_max=1.0, x_ticks=[0, 8, 16, 24, 32, 40, 48, 56, 63])
    f4 = paper.FIG4
    return {"ran": True, "svg": svg, "summary": summary, "ratios": ratios, "cut": spec["cut"],
            "scale": spec.get("scale", "unknown"), "num_images": spec["num_images"], "num_steps": spec["num_steps"],
            "paper": [{"what": "Baseline DiT output, high-index plateau", "value": "%.2f–%.2f" % f4["baseline_dit_high"]},
                      {"what": "Pixel velocity (both), high-index plateau", "value": "%.2f–%.2f" % f4["velocity_high"]},
                      {"what": "DeCo DiT output, indices 45–63", "value": "%.2f–%.2f" % f4["deco_dit_high"]}]}
