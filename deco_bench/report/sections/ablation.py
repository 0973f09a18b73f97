"""The ablation section (ablation/tables.json): Table 4 axes and Table 1 rows, our metric per setting beside the
paper's, and the ranking stated with the significance of the differences behind it (_ranking_text)."""

from __future__ import annotations

from typing import Any

from deco_bench import paper
from deco_bench.report.fmt import fmt, fmt_interval, metric_name
from deco_bench.report.inputs import PATHS, missing_keys, not_ran, unrecognised


def _ablation_rows(rows: list, metric: str) -> list[dict]:
    out = []
    for r in rows:
        ours, pap = r.get("ours") or None, r.get("paper") or None
        out.append({"setting": fmt(r.get("setting"), 2) if isinstance(r.get("setting"), float) else str(r.get("setting")),
                    "label": r.get("label") or "", "default_paper": bool(r.get("default_paper")),
                    "default_ours": bool(r.get("default_ours")),
                    "paper": [fmt((pap or {}).get(k), 2) for k in ("fid", "sfid", "is")] if pap else None,
                    "paper_source": (pap or {}).get("source", ""),
                    "ours": fmt(ours.get("value")) if ours else "not run at this profile",
                    "ours_ci": fmt_interval(ours.get("ci")) if ours else "n/a",
                    "best_ours": bool(r.get("best_ours")), "best_paper": bool(r.get("best_paper"))})
    return out


def _pairs_text(n: int) -> str:
    return f"{n} pair{'s' if n != 1 else ''} of settings"


def _ranking_text(rk: dict, level: float = 0.95) -> str:
    """The ranking agreement with the significance of the differences behind it: agreement is claimed only for
    differences beyond their bootstrap interval; with none, the ranking is "not resolved by this run"."""
    if not rk or rk.get("kendall_tau") is None:
        return (rk or {}).get("reason", "no ranking")
    tau, pct = f"{rk['kendall_tau']:+.2f}", f"{level * 100:g}%"
    sig = rk.get("significance")
    if not isinstance(sig, dict):
        return (f"Kendall τ of our point values against the paper's order: {tau}; the significance of the differences "
                f"is not recorded ({PATHS['ablation']} predates the significance check: re-run `dvc repro ablation`), "
                f"so no agreement is claimed.")
    n, k, unknown = sig["pairs"], sig["significant"], sig["unknown"]
    if k == 0:
        if unknown == n:
            return (f"Ranking not resolved by this run: our values carry no intervals, so no difference between "
                    f"settings is known to be significant (the point values' Kendall τ against the paper's order, "
                    f"{tau}, is no evidence of agreement).")
        which = "the one pair of settings does not differ" if n == 1 else f"none of the {_pairs_text(n)} differs"
        return (f"Ranking not resolved by this run: {which} beyond its {pct} bootstrap "
                f"interval{f' ({unknown} without an interval)' if unknown else ''}, so the order of our point values "
                f"(Kendall τ {tau} against the paper's) is no evidence of agreement or disagreement.")
    text = (f"{k} of {_pairs_text(n)} {'differs' if k == 1 else 'differ'} beyond {'its' if k == 1 else 'their'} "
            f"{pct} bootstrap interval: "
            f"{sig['significant_same_order']} ordered as in the paper, {sig['significant_opposite_order']} ordered "
            f"differently (Kendall τ over those pairs {sig['kendall_tau_significant']:+.2f}; over all point values "
            f"{tau})")
    if rk.get("discordant"):
        said = {True: " (significant)", False: " (within the interval)"}
        text += "; ordered differently: " + "; ".join(
            f"{d['settings'][0]} vs {d['settings'][1]}" + said.get(d.get("significant"), " (significance unknown)")
            for d in rk["discordant"])
    if rk.get("best_agrees") is True:
        text += "; best setting agrees" + {True: " (significantly better than every other setting)",
                                           False: ", but is not significantly better than every other setting"
                                           }.get(rk.get("best_significant"), " (significance unknown)")
    elif rk.get("best_agrees") is False:
        text += "; best setting differs" + {True: " (significantly better than the paper's best setting)",
                                            False: ", but not significantly (ours is within the interval of the "
                                                   "paper's best setting)"
                                            }.get(rk.get("best_vs_paper_best_significant"), " (significance unknown)")
    return text + "."


def ablation_section(tables: Any, model_keys: list[str] | None = None) -> dict:
    """ablation/tables.json (deco_bench.studies.ablation.build_tables): Table 4 axes and Table 1 rows, our metric per
    setting (with its bootstrap interval) beside the paper's FID / sFID / IS, and the ranking with its significance.
    `model_keys` (params `models:`): a file that places a model not among them is stale and is left out."""
    if tables is None:
        return not_ran("ablation", PATHS["ablation"])
    missing = missing_keys(tables, ("table4", "table1", "metric", "protocol"))
    if missing:
        return unrecognised("ablation", PATHS["ablation"], missing)
    metric = tables["metric"]
    prot = tables["protocol"] if isinstance(tables["protocol"], dict) else {}
    level = prot.get("ci_level", 0.95) if isinstance(prot.get("ci_level"), (int, float)) else 0.95
    axes = []
    for a in list(tables["table4"]) + [{"axis": "table1", **tables["table1"]}]:
        if not isinstance(a, dict) or "rows" not in a:
            return unrecognised("ablation", PATHS["ablation"], ["table4[].rows"])
        axes.append({"name": a.get("axis", "?"), "title": a.get("title", a.get("axis", "?")),
                     "status": a.get("status", ""), "run": a.get("status") == "run",
                     "rows": _ablation_rows(a["rows"], metric),
                     "ranking": _ranking_text(a.get("ranking") or {}, level)})
    if model_keys is not None:
        named = {r.get("model") for a in list(tables["table4"]) + [tables["table1"]] for r in a["rows"]
                 if isinstance(r, dict)} | set(tables.get("unassigned") or {})
        stale = sorted(str(m) for m in named if m and m not in model_keys)
        if stale:
            return {"ran": False, "message": f"{PATHS['ablation']} is stale: it places {', '.join(stale)}, not among "
                                             f"the models of params.yaml; re-run `dvc repro ablation` (the section "
                                             f"is left out)."}
    return {"ran": True, "axes": axes, "scale": tables.get("scale", "unknown"), "metric": metric_name(metric),
            "ours_protocol": prot.get("ours", ""), "paper_protocol": prot.get("paper", paper.TABLE4_PROTOCOL),
            "note": prot.get("note", ""), "unassigned": [f"{k}: {v}" for k, v in (tables.get("unassigned") or {}).items()]}
