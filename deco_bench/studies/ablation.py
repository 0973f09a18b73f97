"""The ablation study of paper Tables 1 and 4 as ordinary `models:` entries, and its report-ready tables.

Every variant is a params `models:` entry so that it trains, samples and evaluates through the
same foreach stages as DeCo and the baseline, with the same budget and seeds. `expand_ablation_grid` writes those
entries; `build_tables` reads them back: it finds each variant's axis and setting by the one field in which it
differs from the DeCo entry, and lays our metric beside the paper's (paper.TABLE4, paper.TABLE1).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any, Mapping

from deco_bench import paper
from deco_bench.config import ModelEntry, Params
from deco_bench.metrics.api import LOWER_IS_BETTER, compare
from deco_bench.metrics.bootstrap import CI_LEVEL
from deco_bench.models import PRESETS, get_preset, matched_decoder_hidden

LOSS_FIELDS = ("freqfm_weight", "freqfm_quality", "freqfm_gamma", "repa_weight", "null_condition_p")
NOT_RUN = "not run at this profile"


@dataclass(frozen=True)
class Axis:
    """One Table 4 sub-table: the varied field, its settings, and whether its runs used FreqFM."""
    name: str
    title: str
    field: str  # a ModelConfig field (set through `arch`) or a loss field of the entry
    settings: tuple
    with_freqfm: bool
    label: str  # format of a variant's label, e.g. "d={}"

    @property
    def in_arch(self) -> bool:
        return self.field not in LOSS_FIELDS


# Table 4 (docs/paper.md §2.2). (a) and (b) ran without FreqFM, so their default row is "DeCo w/o FreqFM" (34.12).
# FreqFM weight 0 is that same run (Table 1), listed on axis (e) as the issue asks.
TABLE4_AXES: dict[str, Axis] = {a.name: a for a in (
    Axis("decoder_hidden", "(a) Hidden size d of the pixel decoder", "decoder_hidden", (16, 32, 64), False, "d={}"),
    Axis("decoder_depth", "(b) Depth N of the pixel decoder", "decoder_depth", (1, 3, 6), False, "N={}"),
    Axis("decoder_patch_size", "(c) Patch size of the pixel decoder", "decoder_patch_size", (1, 4, 16), True,
         "patch {}"),
    Axis("interaction", "(d) Interaction between the DiT and the pixel decoder", "interaction", ("adaln", "add"),
         True, "{}"),
    Axis("freqfm_weight", "(e) Loss weight of FreqFM", "freqfm_weight", (0.0, 0.5, 1.0, 2.0), True, "w={:g}"),
    Axis("freqfm_quality", "(f) JPEG quality in FreqFM", "freqfm_quality", (50, 85, 100), True, "q={}"),
)}

# Table 1 rows (docs/paper.md §2.1): name -> (label, the fields that differ from DeCo; baseline, pixnerd and jit are
# other networks: Baseline and JiT+REPA the baseline DiT of DeCo's size, trained on v or on x; PixNerd its own).
TABLE1_ROWS: dict[str, tuple[str, dict]] = {
    "baseline": ("Baseline", {"freqfm_weight": 0.0}),
    "deco_no_repa": ("DeCo w/o REPA", {"repa_weight": 0.0}),
    "deco_no_freqfm": ("DeCo w/o FreqFM", {"freqfm_weight": 0.0}),
    "deco": ("DeCo", {}),
    "pixnerd": ("PixNerd", {"freqfm_weight": 0.0}),
    "jit": ("JiT+REPA", {"freqfm_weight": 0.0, "arch": {"prediction": "x"}}),
}
# The preset of the network each other-network row uses, from DeCo's preset (deco-l -> baseline-l, pixnerd-l).
_OTHER_NETWORK = {"baseline": "baseline", "jit": "baseline", "pixnerd": "pixnerd"}


# --------------------------------------------------------------------------------------------------- the grid

def _resolved(entry: Mapping | ModelEntry) -> dict:
    """Everything that makes a variant: the preset's ModelConfig with its arch overrides, and the loss fields."""

    e = entry if isinstance(entry, ModelEntry) else ModelEntry(**dict(entry))
    cfg = get_preset(e.preset, **e.arch)
    return {**dataclasses.asdict(cfg), **{f: float(getattr(e, f)) if f != "freqfm_quality" else getattr(e, f)
                                          for f in LOSS_FIELDS}}


def _name(axis: Axis, setting: Any) -> str:
    text = f"{setting:g}".replace(".", "") if isinstance(setting, float) else str(setting)
    return f"{axis.name}_{text}"


def _variant(axis: Axis, setting: Any, base_preset: str, base: dict, match_decoder_params: bool) -> dict:
    entry = {k: v for k, v in base.items() if k != "label"}
    entry.update(label=axis.label.format(setting))
    if not axis.in_arch:
        entry[axis.field] = setting
        return entry
    arch = {axis.field: setting}
    try:  # an invalid setting for this preset (e.g. decoder patch 16 on a DiT patch of 4) fails here, by name
        get_preset(base_preset, **arch)
    except ValueError as e:
        raise ValueError(f"ablation {axis.name}={setting!r} is invalid for {base_preset}: {e}; choose this preset's "
                         f"settings with `axes=`") from e
    if axis.field == "decoder_patch_size" and match_decoder_params:
        # Table 4(c): "All comparisons use similar parameter counts": widen the decoder to the per-pixel one's size.
        cfg = get_preset(base_preset)
        arch["decoder_hidden"] = matched_decoder_hidden(dataclasses.replace(cfg, decoder_patch_size=setting),
                                                        cfg.decoder_hidden)
    entry["arch"] = arch
    return entry


def expand_ablation_grid(base_preset: str, *, axes: Mapping[str, tuple] | None = None,
                         include_table1: bool = True, match_decoder_params: bool = True) -> dict[str, dict]:
    """`models:` entries for the Table 4 axes (`axes`: name -> settings; default all of TABLE4_AXES) and, with
    include_table1, the Table 1 rows. A setting equal to its axis's default is the base run itself (DeCo, or DeCo
    w/o FreqFM for axes (a) and (b)), so no configuration appears twice. With match_decoder_params the decoder
    patch-size variants get the decoder width whose parameter count matches the per-pixel decoder (Table 4(c))."""

    if not get_preset(base_preset).kind == "deco":
        raise ValueError(f"base_preset must be a DeCo preset, got {base_preset!r}")
    axes = {a.name: a.settings for a in TABLE4_AXES.values()} if axes is None else dict(axes)
    unknown = sorted(set(axes) - set(TABLE4_AXES))
    if unknown:
        raise ValueError(f"unknown ablation axes {unknown}; accepted: {', '.join(TABLE4_AXES)}")
    # main models first, as in params.yaml; a row whose network has no preset of this size (PixNerd-XL) is left out
    order = ("deco", "baseline", "deco_no_freqfm", "deco_no_repa", "pixnerd", "jit")
    rows = {name: _table1_entry(name, base_preset) for name in order
            if (include_table1 or name in ("deco", "deco_no_freqfm")) and _table1_entry(name, base_preset)}
    grid = dict(rows)
    seen = {_key(_resolved(e)) for e in grid.values() if e["preset"] == base_preset}
    for name, settings in axes.items():
        axis = TABLE4_AXES[name]
        base = rows["deco"] if axis.with_freqfm else rows["deco_no_freqfm"]
        for setting in settings:
            entry = _variant(axis, setting, base_preset, base, match_decoder_params)
            key = _key(_resolved(entry))
            if key not in seen:
                seen.add(key)
                grid[_name(axis, setting)] = entry
    if not include_table1 and not any(not TABLE4_AXES[n].with_freqfm for n in axes) \
            and not any(_same(s, 0.0) for s in axes.get("freqfm_weight", ())):
        grid.pop("deco_no_freqfm")  # only needed as the default run of axes (a), (b) and of weight 0
    return grid


def _table1_entry(name: str, base_preset: str) -> dict:
    """The row's entry; {} when its network has no preset of DeCo's size."""
    label, fields = TABLE1_ROWS[name]
    if name in _OTHER_NETWORK:  # the official baseline for DeCo-X is Baseline-X (docs/paper.md §2.0)
        preset = base_preset.replace("deco", _OTHER_NETWORK[name], 1)
        return {"preset": preset, "label": label, **copy.deepcopy(fields)} if preset in PRESETS else {}
    return {"preset": base_preset, "label": label, **fields}


def _key(resolved: dict) -> tuple:
    return tuple(sorted(resolved.items()))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b))
    return a == b


# --------------------------------------------------------------------------------------------------- the tables

def assign_roles(params: Params) -> tuple[dict[str, list[tuple[str, Any]]], dict[str, str]]:
    """Each model -> its places [(table-4 axis name or "table1", setting or Table 1 row)], found by the fields in
    which it differs from the `deco` entry; plus {model: reason} for models that fit nowhere."""
    roles: dict[str, list[tuple[str, Any]]] = {}
    unassigned: dict[str, str] = {}
    if "deco" not in params.models:
        return roles, {n: "no `deco` entry to compare with" for n in params.models}
    ref = _resolved(params.models["deco"])
    for name, entry in params.models.items():
        res = _resolved(entry)
        diff = {k: v for k, v in res.items() if k != "num_classes" and not _same(v, ref[k])}
        places = _places(diff, res, ref)
        if places:
            roles[name] = places
        else:
            unassigned[name] = f"differs from deco in {sorted(diff)}: not one Table 1 row or Table 4 setting"
    return roles, unassigned


def _places(diff: dict, res: dict, ref: dict) -> list[tuple[str, Any]]:
    if diff.get("kind") == "pixnerd":
        return [("table1", "pixnerd")]
    if diff.get("kind") == "baseline":
        return [("table1", "jit" if res["prediction"] == "x" else "baseline")]
    if not diff:
        return [("table1", "deco")] + [(a.name, res[a.field]) for a in TABLE4_AXES.values() if a.with_freqfm]
    if set(diff) == {"freqfm_weight"} and _same(diff["freqfm_weight"], 0.0):
        return [("table1", "deco_no_freqfm"), ("freqfm_weight", 0.0)] + [
            (a.name, res[a.field]) for a in TABLE4_AXES.values() if not a.with_freqfm]
    if set(diff) == {"repa_weight"} and _same(diff["repa_weight"], 0.0):
        return [("table1", "deco_no_repa")]
    for axis in TABLE4_AXES.values():
        fields = set(diff) - ({"decoder_hidden"} if axis.field == "decoder_patch_size" else set())
        if axis.with_freqfm and fields == {axis.field}:
            return [(axis.name, res[axis.field])]
        if not axis.with_freqfm and fields == {axis.field, "freqfm_weight"} and _same(res["freqfm_weight"], 0.0):
            return [(axis.name, res[axis.field])]
    return []


def _ours(metrics_json: dict, key: str) -> dict:
    ci = metrics_json.get("ci", {}).get(key)
    return {"value": metrics_json["metrics"].get(key), "ci": list(ci) if ci else None,
            "metrics": dict(metrics_json["metrics"]), "num_images": metrics_json.get("num_images")}


def _pair_test(a: dict, b: dict, key: str) -> dict:
    """metrics.api.compare on one metric of two evaluation/<m>.json documents: b - a, its interval, significance."""

    def one(doc: dict) -> dict:
        out: dict = {"metrics": {key: doc["metrics"][key]}}
        for part in ("ci", "bootstrap"):
            if key in (doc.get(part) or {}):
                out[part] = {key: doc[part][key]}
        return out

    return compare(one(a), one(b))[key]


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _ranking(rows: list[dict], lower_is_better: bool, docs: Mapping[str, dict] | None = None,
             metric: str | None = None) -> dict:
    """Best marks, and how our order of the settings that both we and the paper measured compares with theirs,
    with whether each of our differences is significant (metrics.api.compare on `docs`, model -> evaluation/<m>.json:
    the bootstrap interval of the difference, else non-overlapping intervals). Kendall τ is over the point values;
    `significance` says how many pairs behind it differ beyond their interval ("resolved": at least one)."""

    sign = 1.0 if lower_is_better else -1.0
    ours = [r for r in rows if r["ours"] and r["ours"]["value"] is not None]
    for r in rows:  # a best setting needs at least two of ours to choose from
        r["best_ours"] = len(ours) > 1 and r in ours and all(sign * r["ours"]["value"] <= sign * o["ours"]["value"]
                                                          for o in ours)
    paper_rows = [r for r in rows if r["paper"]]
    for r in rows:
        r["best_paper"] = bool(r["paper"]) and all(r["paper"]["fid"] <= o["paper"]["fid"] for o in paper_rows)
    common = [r for r in ours if r["paper"]]
    if len(common) < 2:
        return {"compared": [r["setting"] for r in common], "kendall_tau": None, "discordant": [],
                "disagrees_with_paper": None, "best_agrees": None, "pairs": [], "significance": None,
                "best_significant": None, "best_vs_paper_best_significant": None,
                "reason": "fewer than 2 settings measured both here and in the paper"}
    docs = docs or {}
    concordant, discordant, pairs = 0, [], []
    tests: dict[tuple[int, int], bool | None] = {}
    for (i, a), (j, b) in itertools.combinations(enumerate(common), 2):
        ours_d = sign * (a["ours"]["value"] - b["ours"]["value"])  # > 0: a is worse for us
        paper_d = a["paper"]["fid"] - b["paper"]["fid"]
        test = (_pair_test(docs[a["model"]], docs[b["model"]], metric)
                if metric and a.get("model") in docs and b.get("model") in docs else
                {"difference": b["ours"]["value"] - a["ours"]["value"], "interval": None, "method": "none",
                 "exceeds_interval": None})
        significant = test["exceeds_interval"]
        tests[i, j] = tests[j, i] = significant
        order = {1: "same", -1: "opposite", 0: "tie"}[_sign(ours_d) * _sign(paper_d)]
        pairs.append({"settings": [a["setting"], b["setting"]], "ours": [a["ours"]["value"], b["ours"]["value"]],
                      "paper_fid": [a["paper"]["fid"], b["paper"]["fid"]], "order": order,
                      "difference": test["difference"], "interval": test.get("interval"),
                      "method": test.get("method", "none"), "significant": significant})
        if ours_d * paper_d > 0:
            concordant += 1
        elif ours_d * paper_d < 0:
            ca, cb = a["ours"]["ci"], b["ours"]["ci"]
            overlap = None if not (ca and cb) else bool(ca[0] <= cb[1] and cb[0] <= ca[1])
            discordant.append({"settings": [a["setting"], b["setting"]],
                               "ours": [a["ours"]["value"], b["ours"]["value"]],
                               "paper_fid": [a["paper"]["fid"], b["paper"]["fid"]], "ci_overlap": overlap,
                               "significant": significant})
    n = len(pairs)
    sig = [q for q in pairs if q["significant"]]
    same = sum(q["order"] == "same" for q in sig)
    opposite = sum(q["order"] == "opposite" for q in sig)
    significance = {
        "level": CI_LEVEL, "pairs": n, "significant": len(sig),
        "not_significant": sum(q["significant"] is False for q in pairs),
        "unknown": sum(q["significant"] is None for q in pairs),
        "significant_same_order": same, "significant_opposite_order": opposite,
        "kendall_tau_significant": (same - opposite) / len(sig) if sig else None, "resolved": bool(sig)}
    i_ours = min(range(len(common)), key=lambda i: sign * common[i]["ours"]["value"])
    i_paper = min(range(len(common)), key=lambda i: common[i]["paper"]["fid"])
    best_agrees = _same(common[i_ours]["setting"], common[i_paper]["setting"])
    around_best = [tests[i_ours, j] for j in range(len(common)) if j != i_ours]
    best_significant = (False if any(t is False for t in around_best) else
                        None if any(t is None for t in around_best) else True)
    return {"compared": [r["setting"] for r in common], "kendall_tau": (concordant - len(discordant)) / n,
            "discordant": discordant, "disagrees_with_paper": bool(discordant),
            "disagrees_significantly": any(d["significant"] for d in discordant),
            "best_agrees": best_agrees, "pairs": pairs, "significance": significance,
            "best_significant": best_significant,
            "best_vs_paper_best_significant": None if best_agrees else tests[i_ours, i_paper]}


def _axis_table(axis: Axis, ours: dict[Any, tuple[str, dict]], our_default: Any, metric: str,
                lower_is_better: bool) -> dict:
    spec = paper.TABLE4[axis.name]
    paper_rows = [(s, {"fid": fid, "sfid": sfid, "is": is_}) for s, fid, sfid, is_ in spec["rows"]]
    if axis.name == "freqfm_weight":  # weight 0 = "DeCo w/o FreqFM", Table 1
        t1 = next(r for r in paper.TABLE1 if r["variant"] == "deco_no_freqfm")
        paper_rows.insert(0, (0.0, {"fid": t1["fid"], "sfid": t1["sfid"], "is": t1["is"], "source": "Table 1"}))
    settings = [s for s, _ in paper_rows] + sorted((s for s in ours if not any(_same(s, p) for p, _ in paper_rows)),
                                                   key=str)
    rows = []
    for s in settings:
        mine = next((v for k, v in ours.items() if _same(k, s)), None)
        rows.append({"setting": s, "model": mine[0] if mine else None, "label": mine[1]["label"] if mine else None,
                     "ours": _ours(mine[1], metric) if mine else None,
                     "paper": next((p for k, p in paper_rows if _same(k, s)), None),
                     "default_ours": our_default is not None and _same(s, our_default),
                     "default_paper": _same(s, spec["default"])})
    ranking = _ranking(rows, lower_is_better, {name: doc for name, doc in ours.values()}, metric)
    variants = [s for s in ours if our_default is None or not _same(s, our_default)]
    return {"axis": axis.name, "title": axis.title, "field": axis.field, "with_freqfm": axis.with_freqfm,
            "status": "run" if variants else NOT_RUN, "rows": rows, "ranking": ranking}


def build_tables(metrics_by_model: dict[str, dict], params: Params, metric: str = "auto",
                 train_steps: int | None = None) -> dict:
    """Report-ready Tables 1 and 4: per axis our metric per setting (with its bootstrap CI) beside the paper's
    FID / sFID / IS, the best setting of each side marked, the pairs our ranking orders differently, and which of
    our differences are significant. `train_steps`: the step the metrics files record, checked by the caller
    (stages.ablation); default params train.steps. It is stated in the protocol and as protocol.train_steps."""

    roles, unassigned = assign_roles(params)
    spaces = {m.get("feature_space") for m in metrics_by_model.values()}
    if metric == "auto":
        metric = "fid" if spaces == {"inception"} else "fd_embed"
    lower = metric in LOWER_IS_BETTER
    placed: dict[str, dict[Any, tuple[str, dict]]] = {}
    for name, places in roles.items():
        if name not in metrics_by_model:
            unassigned[name] = "no metrics file"
            continue
        for table, setting in places:
            placed.setdefault(table, {})[setting] = (name, {"label": params.models[name].label or name,
                                                            **metrics_by_model[name]})
    deco_cfg = _resolved(params.models["deco"]) if "deco" in params.models else None
    table4 = []
    for axis in TABLE4_AXES.values():
        default = None
        if deco_cfg is not None:
            default = deco_cfg[axis.field] if axis.name != "freqfm_weight" else deco_cfg["freqfm_weight"]
        table4.append(_axis_table(axis, placed.get(axis.name, {}), default, metric, lower))
    t1_rows = []
    for row in paper.TABLE1:
        mine = placed.get("table1", {}).get(row["variant"])
        t1_rows.append({"setting": row["variant"], "method": row["method"], "model": mine[0] if mine else None,
                        "label": mine[1]["label"] if mine else None, "ours": _ours(mine[1], metric) if mine else None,
                        "paper": {k: row[k] for k in ("fid", "sfid", "is", "recall", "params_m")},
                        "default_ours": False, "default_paper": row["variant"] == "deco"})
    t1_ranking = _ranking(t1_rows, lower, {name: doc for name, doc in placed.get("table1", {}).values()}, metric)
    sample = params.sample
    steps = params.train.steps if train_steps is None else train_steps
    return {
        "scale": params.run.scale, "profile": params.run.profile, "metric": metric, "lower_is_better": lower,
        "feature_space": sorted(s for s in spaces if s) or None,
        "protocol": {
            "ours": (f"{params.run.scale} scale, profile {params.run.profile}: {metric} of {sample.num_images} "
                     f"samples (sampling seed {sample.seed}, {sample.num_steps} {sample.sampler} steps, CFG "
                     f"{sample.cfg_scale:g}) after {steps} training steps at batch "
                     f"{params.train.global_batch}, every variant with the same budget and seeds; intervals: "
                     f"bootstrap over samples (evaluation/<m>.json)"),
            "ci_level": CI_LEVEL,
            "train_steps": steps,
            "paper": paper.TABLE4_PROTOCOL,
            "comparable_values": params.run.scale == "paper" and metric == "fid",
            "note": ("values are on the paper's scale" if params.run.scale == "paper" and metric == "fid" else
                     "our values are not on the paper's scale (another feature space, dataset and budget): compare "
                     "the ranking of the settings, not the numbers"),
        },
        "table4": table4,
        "table1": {"title": "Table 1: baseline and DeCo variants", "rows": t1_rows, "ranking": t1_ranking,
                   "status": "run" if len([r for r in t1_rows if r["ours"]]) > 1 else NOT_RUN},
        "unassigned": unassigned,
    }


__all__ = ["Axis", "TABLE4_AXES", "TABLE1_ROWS", "NOT_RUN", "expand_ablation_grid", "assign_roles", "build_tables"]
