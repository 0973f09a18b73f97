"""Our result at embedded scale: our DeCo against each other model (difference, bootstrap interval, significance),
beside the direction the paper reports for the same pair in Table 1 (directions only; values are never compared)."""

from __future__ import annotations

from deco_bench import paper
from deco_bench.metrics.api import LOWER_IS_BETTER, compare
from deco_bench.report.fmt import fmt, fmt_interval, metric_name
from deco_bench.report.inputs import not_ran
from deco_bench.report.sections.paper_tables import PAPER_METRICS_T2

# An embedded metric and the paper metric whose direction it stands in for (directions only, never values).
PAPER_COUNTERPART = {"fd_embed": "fid", "is_embed": "is", "precision_embed": "precision", "recall_embed": "recall"}


def pair_comparisons(inputs: dict, models: list[dict]) -> dict:
    """Our DeCo vs each other model, at whatever scale we ran: difference, its bootstrap interval, significance,
    and the direction the paper reports for the same pair (directions only; values are never compared)."""
    raw = {k: v.get("metrics") for k, v in (inputs.get("models") or {}).items()}
    if not raw.get("deco"):
        return not_ran("evaluate", "evaluation/deco.json")
    label = {m["key"]: m["label"] for m in models}
    t1 = {r["variant"]: r for r in paper.TABLE1}
    comparisons = []
    for other, met in raw.items():
        if other == "deco" or not met:
            continue
        rows = []
        for key, e in compare(met, raw["deco"]).items():
            rows.append(_pair_row(key, e, t1.get(other), t1["deco"]))
        comparisons.append({"other": other, "other_label": label.get(other, other),
                            "scale": raw["deco"].get("scale", "unknown"), "rows": rows,
                            "paper_ref": (f"paper Table 1 ({t1[other]['method']} vs DeCo, ImageNet 256, L, 200K it)"
                                          if other in t1 else "no paper counterpart")})
    if not comparisons:
        return {"ran": False, "message": "Only DeCo has metrics: no comparison to show (no other evaluation/<m>.json)."}
    return {"ran": True, "deco_label": label.get("deco", "DeCo"), "comparisons": comparisons}


def _pair_row(key: str, e: dict, paper_other: dict | None, paper_deco: dict) -> dict:
    lower = key in LOWER_IS_BETTER
    d, exceeds = e["difference"], e.get("exceeds_interval")
    if exceeds is None:
        finding = "no interval: significance unknown"
    elif not exceeds:
        finding = "within the bootstrap interval (no significant difference)"
    else:
        finding = "DeCo better" if (d < 0) == lower else "DeCo worse"
    pk = PAPER_COUNTERPART.get(key, key if key in PAPER_METRICS_T2 else None)
    paper_text, agrees = "n/a", None
    if pk and paper_other and pk in paper_other and pk in paper_deco:
        pd_ = paper_deco[pk] - paper_other[pk]
        paper_text = f"{metric_name(pk)} {paper_other[pk]:.2f} → {paper_deco[pk]:.2f} ({pd_:+.2f})"
        if exceeds:
            agrees = "same direction" if (d > 0) == (pd_ > 0) else "opposite direction"
        else:
            agrees = "not significant in ours"
    return {"metric": metric_name(key), "key": key, "other": fmt(e["a"]), "deco": fmt(e["b"]),
            "difference": f"{d:+.3f}", "interval": fmt_interval(e.get("interval")),
            "method": e.get("method", "none"), "finding": finding,
            "cls": "ok" if finding == "DeCo better" else "bad" if finding == "DeCo worse" else "",
            "paper": paper_text, "agrees": agrees or "n/a"}
