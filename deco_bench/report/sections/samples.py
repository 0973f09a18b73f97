"""The samples section: the held-out real crops' grid first (what each class looks like), then each model's sample
grid (made by report.inputs from previews/<m>.npz) with its class accuracy and FD beside the real-vs-real ceiling
and floor (metrics/evalnet/real.json)."""

from __future__ import annotations

from typing import Any

from deco_bench.report.fmt import fmt, fmt_interval
from deco_bench.report.inputs import not_ran


THUMB_HEIGHT = 240  # px: the first screen's sample grids, side by side


def _thumb(width: int, height: int) -> tuple[int, int]:
    """The first screen's size of a grid: small grids at a whole multiple (at most 4x, pixels stay sharp), large
    ones scaled down to THUMB_HEIGHT."""
    k = min(4, max(1, THUMB_HEIGHT // max(height, 1)))
    if height * k > THUMB_HEIGHT:
        return max(1, round(width * THUMB_HEIGHT / height)), THUMB_HEIGHT
    return width * k, height * k


def _grid(g: dict, label: str, names: list) -> dict:
    tw, th = _thumb(g["width"], g["height"])
    return {"label": label, "uri": g["uri"], "width": g["width"], "height": g["height"], "per_class": g["per_class"],
            "num_images": g["num_images"], "path": g["path"], "thumb_width": tw, "thumb_height": th,
            "classes": [names[c] if c < len(names) else f"class {c}" for c in g["classes"]]}


def _with_interval(value: Any, lo: Any, hi: Any) -> str:
    return f"{fmt(value)} {fmt_interval([lo, hi])}" if lo is not None and hi is not None else fmt(value)


def samples_section(grids: dict, models: list[dict], data_info: Any, real: Any = None,
                    per_model: dict | None = None, real_grid: dict | None = None) -> dict:
    model_grids = grids
    if not model_grids:
        return not_ran("sample", "previews/<model>.npz")
    names = (data_info or {}).get("class_names") or []
    label = {m["key"]: m["label"] for m in models}
    real = real if isinstance(real, dict) else {}
    ceiling, floor = real.get("class_accuracy_real"), real.get("fd_embed_floor")
    out = []
    for m, g in model_grids.items():
        entry = {"model": m, **_grid(g, label.get(m, m), names), "class_accuracy": None, "fd": None,
                 "fd_over_floor": None}
        doc = ((per_model or {}).get(m) or {}).get("metrics") or {}
        values, ci = doc.get("metrics") or {}, doc.get("ci") or {}
        if "class_accuracy" in values:
            entry["class_accuracy"] = _with_interval(values["class_accuracy"], *(ci.get("class_accuracy") or
                                                                                  [None, None]))
        if "fd_embed" in values:
            entry["fd"] = _with_interval(values["fd_embed"], *(ci.get("fd_embed") or [None, None]))
            if floor:
                entry["fd_over_floor"] = fmt(values["fd_embed"] / floor, 2)
        entry["short"] = ", ".join(f"{name} {fmt(values[k])}" for k, name in (("class_accuracy", "class accuracy"),
                                                                           ("fd_embed", "FD"), ("fid", "FID"))
                                   if k in values)
        out.append(entry)
    missing = [m["key"] for m in models if m["key"] not in model_grids]
    return {"ran": True, "grids": out,
            "real": _grid(real_grid, "Real held-out crops", names) if real_grid else None,
            "ceiling": _with_interval(ceiling, real.get("class_accuracy_real_lo"), real.get("class_accuracy_real_hi"))
            if ceiling is not None else None,
            "floor": fmt(floor) if floor is not None else None,  # its bootstrap interval is biased (see template)
            "real_short": ", ".join(f"{name} {fmt(v)}" for name, v in (("class accuracy", ceiling), ("FD", floor))
                                    if v is not None),
            "missing": [f"{label.get(m, m)}: the sample stage did not run (no previews/{m}.npz)."
                        for m in missing]}
