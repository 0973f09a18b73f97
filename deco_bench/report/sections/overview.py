"""The report's first screen: what this run was (run_overview) and its headline result, DeCo vs the baseline with
the interval of the difference and the finding (headline). Pure: inputs from report.inputs -> plain data.

The headline metrics are the distance in the run's own feature space (FID at paper scale, FD in the embedded
feature net otherwise; FD-DINOv2 when measured) and, at embedded scale, class accuracy: at most HEADLINE_MAX of
HEADLINE_METRICS, those both models have, in that order.
"""

from __future__ import annotations

import math
from typing import Any

from deco_bench import paper
from deco_bench.metrics.api import CLASS_ACCURACY, FD_DINOV2, FD_EMBED, FID, IS, LOWER_IS_BETTER, compare
from deco_bench.report.fmt import fmt, fmt_duration, metric_name
from deco_bench.report.inputs import not_ran

HEADLINE_METRICS = (FID, FD_EMBED, FD_DINOV2, CLASS_ACCURACY, IS)
HEADLINE_MAX = 3
FIRST_SCREEN_GRIDS = 4  # model grids beside the real crops in the first screen (all of them in the samples section)


def roles(params: dict) -> tuple[str, str]:
    """(DeCo's model key, the baseline's): params `convergence:` deco / baseline, else "deco" / "baseline"."""
    conv = params.get("convergence") if isinstance(params.get("convergence"), dict) else {}
    return str(conv.get("deco") or "deco"), str(conv.get("baseline") or "baseline")


def first_screen_grids(grids: list[dict], params: dict) -> tuple[list[dict], int]:
    """The model grids the first screen shows beside the real crops: DeCo's and the baseline's first, then the
    others in params order, FIRST_SCREEN_GRIDS at most; and how many more the samples section holds."""
    dk, bk = roles(params)
    ordered = sorted(grids, key=lambda g: (g.get("model") != dk, g.get("model") != bk))  # stable: params order
    return ordered[:FIRST_SCREEN_GRIDS], max(0, len(ordered) - FIRST_SCREEN_GRIDS)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _hardware(inputs: dict) -> str:
    """The machine the numbers come from: the bench stage's fingerprint (bench/results.json env), else the machine
    that rendered the report (labelled so)."""
    bench = inputs.get("bench")
    env = bench.get("env") if isinstance(bench, dict) and isinstance(bench.get("env"), dict) else {}
    hw = env.get("hardware") if isinstance(env.get("hardware"), dict) else {}
    if hw:
        if hw.get("device_type") == "cuda":
            where = f"{hw.get('device_count', 1)}× {hw.get('device_name', 'CUDA device')}"
        else:
            where = f"{hw.get('cpu_model') or hw.get('device_name') or 'CPU'}, {hw.get('cpu_count', '?')} CPU cores"
        extra = ", ".join(str(x) for x in (f"torch {env['torch']}" if env.get("torch") else None, env.get("dtype"))
                          if x)
        return f"{where}{f' ({extra})' if extra else ''}, as the bench stage recorded it"
    prov = (inputs.get("provenance") or {}).get("hardware") or {}
    if prov:
        gpu = prov.get("gpu", "none visible")
        return (f"{prov.get('cpu_count', '?')} CPU cores, GPU {gpu} (the machine that rendered this report; the bench "
                f"stage did not run)")
    return "not recorded (the bench stage did not run)"


def _data_text(params: dict, info: Any) -> str:
    data = params.get("data") or {}
    info = info if isinstance(info, dict) else {}
    res, source = info.get("resolution", data.get("resolution", "?")), data.get("source", "?")  # as built
    n_cls = len(info.get("class_names") or []) or data.get("num_classes")
    what = (f"{res} px crops of {n_cls} embedded photographs (one class each)" if source == "embedded"
            else f"{source} at {res} px, {n_cls} classes")
    return what + (f", {fmt(info['num_train'])} training images" if _num(info.get("num_train")) else "")


def _sampling_text(params: dict, per_model: dict) -> str:
    sample = params.get("sample") or {}
    si = next((m.get("sample_info") for m in per_model.values() if isinstance(m.get("sample_info"), dict)), None) or {}
    sampler, steps = si.get("sampler", sample.get("sampler", "?")), si.get("num_steps", sample.get("num_steps", "?"))
    cfg = si.get("cfg_scale", sample.get("cfg_scale", 1.0))
    gi = sample.get("guidance_interval")
    guided = f"CFG {cfg:g}" + (f" on ({gi[0]:g}, {gi[1]:g}]" if isinstance(gi, list) and len(gi) == 2 else "") \
        if _num(cfg) and cfg != 1.0 else "no CFG"
    n = si.get("num_images", sample.get("num_images"))
    return f"{fmt(n)} samples per model ({sampler}, {steps} steps, {guided})"


def run_overview(inputs: dict, params: dict, models: list[dict], steps: dict | None = None) -> dict:
    """What was run, for the first screen: one sentence (profile, scale, data, budget, sampling, feature space,
    machine) and one row per model (preset, parameters, training steps x batch, training wall time and speed)."""
    run, train = params.get("run") or {}, params.get("train") or {}
    entries = params.get("models") if isinstance(params.get("models"), dict) else {}
    per_model = inputs.get("models") or {}
    checked = (steps or {}).get("by_model") or {}
    batch = train.get("global_batch")
    rows = []
    for m in models:
        key = m["key"]
        ts = per_model.get(key, {}).get("train_summary") or {}
        n_steps = checked.get(key, ts.get("steps"))
        speed = ts.get("images_per_s", ts.get("images_per_s_median"))  # the summary's older name: the second
        rows.append({"key": key, "label": m["label"], "preset": str((entries.get(key) or {}).get("preset", "?")),
                     "params": f"{fmt(ts['params_m'], 2)}M" if _num(ts.get("params_m")) else "n/a",
                     "training": (f"{fmt(n_steps)} steps × batch {fmt(batch)}" if _num(n_steps)
                                  else "not trained yet (no metrics/train/" + key + ".json)"),
                     "wall": fmt_duration(ts.get("wall_s")) if _num(ts.get("wall_s")) else "n/a",
                     "speed": f"{fmt(speed, 1)} images/s" if _num(speed) else "n/a",
                     "evaluated": m["has_metrics"]})
    space = next((str(v["metrics"].get("feature_space")) for v in per_model.values()
                  if isinstance(v.get("metrics"), dict) and v["metrics"].get("feature_space")), None)
    space_text = {"embed": "scored in the embedded feature net (not Inception: FD, not FID)",
                  "inception": "scored with Inception features (ADM protocol)"}.get(space or "", "not evaluated yet")
    scale = str(run.get("scale", "unknown"))
    summary = (f"{_data_text(params, inputs.get('data_info'))}; {_sampling_text(params, per_model)}, "
               f"{space_text}.")
    return {"profile": str(run.get("profile", "unknown")), "scale": scale, "summary": summary,
            "hardware": _hardware(inputs), "rows": rows,
            "scale_note": ("" if scale == "paper" else
                           "At this scale the numbers are not ImageNet numbers: they compare DeCo with the baseline "
                           "under one protocol, and the paper's tables (further down) are not compared with them.")}


def _short(v: Any) -> str:
    """A headline number with four significant digits at most (86.99, 116.4, 0.953), never more than three
    decimals; None and non-finite as 'n/a'."""
    if not _num(v) or not math.isfinite(v):
        return "n/a"
    digits = min(3, max(0, 3 - math.floor(math.log10(abs(v))))) if v else 3
    return f"{v:,.{digits}f}"


def _short_interval(iv: Any) -> str:
    return f"[{_short(iv[0])}, {_short(iv[1])}]" if isinstance(iv, (list, tuple)) and len(iv) == 2 else "n/a"


def _bound_interval(iv: Any) -> str:
    """A speed-up interval; an end the bootstrap could not bound (DeCo or the baseline never reached the target in
    enough replicates: convergence/summary.json says why) is written "no bound", never a number."""
    if not isinstance(iv, (list, tuple)) or len(iv) != 2:
        return "n/a"
    return "[" + ", ".join(fmt(v, 2) if _num(v) else "no bound" for v in iv) + "]"


def _finding(e: dict) -> tuple[str, str]:
    exceeds, d = e.get("exceeds_interval"), e["difference"]
    if exceeds is None:
        return "significance unknown (no interval)", ""
    if not exceeds:
        return "no significant difference", ""
    better = (d < 0) == e.get("lower_is_better", False)
    return ("DeCo better", "ok") if better else ("DeCo worse", "bad")


def headline(inputs: dict, params: dict, models: list[dict]) -> dict:
    """DeCo vs the baseline on the headline metrics: each value with its 95% interval, the difference DeCo −
    baseline with the interval of the difference and the finding; the convergence speed-up when measured; the
    paper's direction for the same pair (Table 1), directions only."""
    dk, bk = roles(params)
    per_model = inputs.get("models") or {}
    deco, base = (per_model.get(k, {}).get("metrics") for k in (dk, bk))
    if not deco:
        return not_ran("evaluate", f"evaluation/{dk}.json")
    if not base:
        return not_ran("evaluate", f"evaluation/{bk}.json")
    label = {m["key"]: m["label"] for m in models}
    cmp = compare(base, deco)
    keys = [k for k in HEADLINE_METRICS if k in cmp][:HEADLINE_MAX]
    rows, findings = [], []
    for k in keys:
        e = cmp[k]
        finding, cls = _finding(e)
        rows.append({"key": k, "metric": metric_name(k), "direction": "lower is better" if k in LOWER_IS_BETTER
                     else "higher is better",
                     "base": _short(e["a"]), "base_ci": _short_interval((base.get("ci") or {}).get(k)),
                     "deco": _short(e["b"]), "deco_ci": _short_interval((deco.get("ci") or {}).get(k)),
                     "difference": ("+" if e["difference"] > 0 else "") + _short(e["difference"]),
                     "interval": _short_interval(e["interval"]) if e.get("interval") else
                     {"ci-overlap": f"n/a (the intervals {'are disjoint' if e.get('exceeds_interval') else 'overlap'})"
                      }.get(e.get("method"), "n/a"),
                     "finding": finding, "cls": cls})
        name = metric_name(k)
        mid = name[:1].lower() + name[1:] if name[1:2].islower() else name  # "class accuracy", but "FD"
        findings.append(f"{finding} on {mid}" if cls else f"{mid}: {finding}")
    if not rows:
        return {"ran": False, "message": f"evaluation/{dk}.json and evaluation/{bk}.json share no headline metric "
                                         f"({', '.join(HEADLINE_METRICS)})."}
    sp = inputs.get("speedup")
    speedup = None
    if isinstance(sp, dict) and _num(sp.get("speedup_iters")):
        speedup = (f"{fmt(sp['speedup_iters'], 2)}× fewer training iterations than the baseline to reach its "
                   f"{sp.get('target', '?')} {metric_name(str(sp.get('metric', '?')))} "
                   f"({sp.get('kind', '?')}; 95% interval {_bound_interval(sp.get('interval'))})")
    t1 = {r["variant"]: r for r in paper.TABLE1}
    paper_text = None
    if bk in t1 and dk in t1:
        paper_text = (f"FID {t1[bk]['fid']:.2f} ({t1[bk]['method']}) → {t1[dk]['fid']:.2f} ({t1[dk]['method']}), "
                      f"paper Table 1 (ImageNet 256, L, 200K iterations); directions only, never values")
    return {"ran": True, "deco": dk, "baseline": bk, "deco_label": label.get(dk, dk), "base_label": label.get(bk, bk),
            "scale": str(deco.get("scale", "unknown")), "num_images": fmt(deco.get("num_images")), "rows": rows,
            "finding": "; ".join(findings) + ".", "speedup": speedup, "paper": paper_text}
