"""The convergence section: the paper's Fig. 5 beside our metric-vs-step curves (convergence/curves.json) and the
speed-up read off them (convergence/summary.json)."""

from __future__ import annotations

from typing import Any

from deco_bench import paper
from deco_bench.report.fmt import fmt, fmt_interval, metric_name
from deco_bench.report.inputs import PATHS, missing_keys, not_ran, unrecognised
from deco_bench.report.svg import Series, line_plot


def convergence_section(curves: Any, speedup: Any, colors: dict | None = None, conv: dict | None = None) -> dict:
    """convergence/curves.json (rows {model, label, step, images_seen, elapsed_s, metric, lo, hi}) and
    convergence/summary.json (deco_bench.studies.convergence.summarise), from deco_bench/stages/convergence.py.
    `colors`: chart_colors; `conv`: params `convergence:` (which models are DeCo and the baseline), so the paper's
    DeCo and baseline curves have our DeCo's and baseline's colours."""
    if curves is None and speedup is None:
        return not_ran("convergence", f"{PATHS['curves']} or {PATHS['speedup']}")
    colors, conv = colors or {}, conv or {}
    dk, bk = str(conv.get("deco", "deco")), str(conv.get("baseline", "baseline"))
    fig5 = paper.FIG5
    out: dict = {"ran": True, "paper_claim": fig5["claim"], "paper_svg": line_plot(
        [Series("Baseline-XL (paper Fig. 5)", fig5["iterations"], fig5["baseline_fid"], style="dashed",
                color=colors.get(bk), model=bk),
         Series("DeCo-XL (paper Fig. 5)", fig5["iterations"], fig5["deco_fid"], color=colors.get(dk), model=dk)],
        title="Paper Fig. 5: FID-50K vs iterations (ImageNet 256, XL)", x_label="training iterations",
        y_label="FID", log_x=True)}
    metric = (speedup or {}).get("metric", "metric") if isinstance(speedup, dict) else "metric"
    rows_ok = isinstance(curves, list) and all(isinstance(r, dict) and not missing_keys(r, ("model", "step", "metric"))
                                               for r in curves)
    out["ours_svg"], out["ours_message"], out["points"] = None, "", []
    if curves is None:
        out["ours_message"] = not_ran("convergence", PATHS["curves"])["message"]
    elif not rows_ok:
        out["ours_message"] = unrecognised("convergence", PATHS["curves"], ["rows of {model, step, metric}"])["message"]
    else:
        by_model: dict[str, list] = {}
        for r in curves:
            by_model.setdefault(r["model"], []).append(r)
        series = [Series(f"{rs[0].get('label', m)} (ours)", [r["step"] for r in rs], [r["metric"] for r in rs],
                         style="dashed" if m != dk else "solid", color=colors.get(str(m)), model=str(m),
                         lo=[r.get("lo") for r in rs], hi=[r.get("hi") for r in rs])  # the band: 95% interval
                  for m, rs in by_model.items()]
        scale = (speedup or {}).get("scale", "?") if isinstance(speedup, dict) else "?"
        out["ours_svg"] = line_plot(series, title=f"Ours: {metric_name(metric)} vs training step ({scale} scale; "
                                                  f"bands: 95% intervals)",
                                    x_label="training step", y_label=metric_name(metric))
        out["points"] = [{"model": r.get("label", r["model"]), "step": fmt(r["step"]), "value": fmt(r["metric"]),
                          "interval": fmt_interval([r.get("lo"), r.get("hi")]) if r.get("lo") is not None else "n/a",
                          "elapsed_s": fmt(r.get("elapsed_s"), 1)} for r in curves]
    out["speedup"], out["speedup_message"] = None, ""
    if speedup is None:
        out["speedup_message"] = not_ran("convergence", PATHS["speedup"])["message"]
    elif missing_keys(speedup, ("speedup_iters", "kind", "statement")):
        out["speedup_message"] = unrecognised("convergence", PATHS["speedup"],
                                              missing_keys(speedup, ("speedup_iters", "kind", "statement")))["message"]
    else:
        reasons = speedup.get("reasons") or {}
        ps = speedup.get("paper") or {}
        out["speedup"] = {
            "metric": metric_name(metric), "scale": str(speedup.get("scale", "?")),
            "iters": fmt(speedup["speedup_iters"], 2), "interval": fmt_interval(speedup.get("interval"), 2),
            "wall": fmt(speedup.get("speedup_wall"), 2), "wall_interval": fmt_interval(speedup.get("interval_wall"), 2),
            "images": fmt(speedup.get("speedup_images"), 2), "kind": str(speedup["kind"]),
            "statement": str(speedup["statement"]), "reasons": [f"{k}: {v}" for k, v in reasons.items()],
            "target": f"{speedup.get('target', '?')} = {fmt(speedup.get('target_value'))}",
            "wall_note": str(speedup.get("wall_note", "")),
            "paper": f"{fmt(ps.get('speedup_iters'), 2)}× (our computation on the paper's Fig. 5 read-offs, "
                     f"{ps.get('scale', 'paper scale')})" if ps else "n/a"}
    return out
