"""Paper Tables 2 (256 and 512 px) and 1, each row with its verdict against ours.

At embedded scale every row says "not comparable: embedded scale" (our DeCo-vs-baseline result is in
sections.pairs); at paper scale a row is compared with ours only when our run used that row's configuration (model
size, resolution, epochs, NFE, sampler), within the stated tolerance (DEFAULT_TOLERANCE, params `report.tolerance`).
"""

from __future__ import annotations

from deco_bench import paper
from deco_bench.report.fmt import fmt, fmt_interval, metric_name

IMAGENET_TRAIN_IMAGES = 1_281_167  # epochs = steps x global batch / this (docs/paper.md §2.0)
# Paper-scale tolerance: |ours - paper| <= max(TOLERANCE[k], half-width of our bootstrap interval).
DEFAULT_TOLERANCE = {"fid": 0.1, "sfid": 0.1, "is": 1.0, "precision": 0.01, "recall": 0.01}
PAPER_METRICS_T2 = ("fid", "sfid", "is", "precision", "recall")
PAPER_METRICS_T1 = ("fid", "sfid", "is", "recall")


def _run_config(params: dict, checked_steps: int | None = None) -> dict:
    """Our run's configuration; its steps are the checked outputs' (train_steps), else params train.steps."""
    train, sample, data = params.get("train") or {}, params.get("sample") or {}, params.get("data") or {}
    steps, batch = checked_steps if checked_steps is not None else train.get("steps"), train.get("global_batch")
    epochs = steps * batch / IMAGENET_TRAIN_IMAGES if steps and batch else None
    cfg = sample.get("cfg_scale", 1.0)
    nfe = f"{sample.get('num_steps')}x2" if cfg and cfg > 1.0 else f"{sample.get('num_steps')}"
    return {"resolution": data.get("resolution"), "steps": steps, "global_batch": batch, "epochs": epochs,
            "nfe": nfe, "sampler": sample.get("sampler"), "cfg_scale": cfg, "num_steps": sample.get("num_steps")}


def _row_matches(table: str, row: dict, cfg: dict, preset: str) -> tuple[bool, str]:
    """Did our run use this paper row's configuration? (size, resolution, epochs/steps, NFE, sampler)"""
    ours = (f"ours: {preset or '?'}, {cfg['resolution']} px, {fmt(cfg['steps'])} steps x batch "
            f"{cfg['global_batch']}, {cfg['sampler']} NFE {cfg['nfe']}")
    if table == "table1":
        ok = (preset.endswith("-l") and cfg["resolution"] == 256 and cfg["steps"] == 200_000
              and cfg["global_batch"] == 256 and cfg["num_steps"] == 50 and cfg["cfg_scale"] == 1.0)
    else:
        want_res = 512 if table == "table2_512" else 256
        sampler = "heun" if "Heun" in row["method"] else "euler"
        ok = (preset.endswith("-xl") and cfg["resolution"] == want_res and cfg["epochs"] is not None
              and abs(cfg["epochs"] - row["epochs"]) <= 0.03 * row["epochs"] and cfg["nfe"] == row["nfe"]
              and cfg["sampler"] == sampler)
    return ok, ours


def paper_tables(inputs: dict, params: dict, models: list[dict], scale: str, tol: dict,
                 steps: dict | None = None) -> dict:
    by_key = {m["key"]: m for m in models}
    cfg = _run_config(params, (steps or {}).get("steps"))
    entries = params.get("models") or {}
    tables = []
    specs = (("table2_256", "Table 2 — ImageNet 256×256, with CFG", paper.TABLE2_256, "model", PAPER_METRICS_T2,
              ("epochs", "nfe", "latency_s")),
             ("table2_512", "Table 2 — ImageNet 512×512, with CFG", paper.TABLE2_512, "model", PAPER_METRICS_T2,
              ("epochs", "nfe", "latency_s")),
             ("table1", "Table 1 — baseline comparison with efficiency (L, 200K iterations, 50 Euler steps, no "
                        "CFG; timings on A800)", paper.TABLE1, "variant", PAPER_METRICS_T1,
              ("params_m", "train_mem_gb", "train_s_per_it", "inf_mem_gb", "s_per_image", "s_per_step")))
    for tid, title, rows, key_field, mkeys, info_keys in specs:
        groups = []
        for row in rows:
            mkey = row[key_field]
            m = by_key.get(mkey)
            g = {"method": row["method"], "info": [fmt(row[k], 3 if k == "s_per_step" else 2)
                                                   if not isinstance(row[k], str) else row[k] for k in info_keys],
                 "paper": [fmt(row[k], 2) for k in mkeys], "ours": None, "diff": None, "model": mkey}
            if scale != "paper":
                g.update(verdict="not comparable: embedded scale", verdict_class="na",
                         note="embedded-scale numbers are not ImageNet numbers; see “Our result at embedded scale”")
            elif m is None or not m["has_metrics"]:
                g.update(verdict="not run", verdict_class="na", note=f"no evaluation/{mkey}.json")
            else:
                preset = str((entries.get(mkey) or {}).get("preset", ""))
                ok, ours_desc = _row_matches(tid, row, cfg, preset)
                if not ok:
                    g.update(verdict="not comparable: different configuration", verdict_class="na", note=ours_desc)
                else:
                    g.update(_compare_row(row, m, mkeys, tol))
            groups.append(g)
        tables.append({"id": tid, "title": title, "info_columns": [_INFO_NAMES[k] for k in info_keys],
                       "metric_columns": [metric_name(k) for k in mkeys], "groups": groups})
    tol_text = ("Verdict rule at paper scale: a reproduced value agrees when |ours − paper| ≤ max(tolerance, "
                "half-width of our 95% bootstrap interval); tolerances: "
                + ", ".join(f"{metric_name(k)} {v:g}" for k, v in tol.items()) + ".")
    verdicts: dict[str, int] = {}
    for t in tables:
        for g in t["groups"]:
            verdicts[g["verdict"]] = verdicts.get(g["verdict"], 0) + 1
    n = sum(verdicts.values())
    summary = (f"{n} paper rows (Table 2 at 256 and 512 px, Table 1): " +
               (f"every verdict “{next(iter(verdicts))}”" if len(verdicts) == 1 else
                ", ".join(f"{c} “{v}”" for v, c in verdicts.items())))
    return {"ran": True, "scale": scale, "tolerance_text": tol_text, "tables": tables,
            "protocol": paper.PROTOCOL, "summary": summary, "collapsed": scale != "paper"}


_INFO_NAMES = {"epochs": "Epochs", "nfe": "NFE", "latency_s": "Latency (s, A800)", "params_m": "Params (M)",
               "train_mem_gb": "Train mem (GB)", "train_s_per_it": "Train (s/it)", "inf_mem_gb": "Inf. mem (GB)",
               "s_per_image": "1 image (s)", "s_per_step": "1 step (s)"}


def _compare_row(row: dict, m: dict, mkeys: tuple, tol: dict) -> dict:
    ours, diffs, bad = [], [], []
    for k in mkeys:
        v = m["metrics"].get(k)
        if v is None:
            ours.append({"text": "n/a", "cls": "na"})
            diffs.append({"text": "n/a", "cls": "na"})
            continue
        d = v - row[k]
        iv = m["ci"].get(k)
        half = (iv[1] - iv[0]) / 2 if iv else 0.0
        ok = abs(d) <= max(tol.get(k, 0.0), half)
        if not ok:
            bad.append(metric_name(k))
        div = [iv[0] - row[k], iv[1] - row[k]] if iv else None
        ours.append({"text": fmt(v, 2), "cls": ""})
        diffs.append({"text": f"{d:+.2f} {fmt_interval(div, 2)}", "cls": "ok" if ok else "bad"})
    verdict = "agrees within tolerance" if not bad else "differs: " + ", ".join(bad)
    return {"ours": ours, "diff": diffs, "verdict": verdict, "verdict_class": "ok" if not bad else "bad",
            "note": ""}
