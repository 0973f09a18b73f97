"""The efficiency section: bench/results.json measured by this run and the committed bench/recordings/*.json, one
table per case (a row per quantity, a cell per model), the ratios, and a throughput bar chart."""

from __future__ import annotations

from typing import Any

from deco_bench.report.fmt import fmt
from deco_bench.report.inputs import PATHS, missing_keys, not_ran, unrecognised
from deco_bench.report.svg import bar_chart


def _get(d: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def _mem(block: dict | None) -> tuple[Any, str]:
    """Peak memory in GB: the CUDA allocator's peak on GPU, else the host RSS peak (labelled which)."""
    m = (block or {}).get("memory") or {}
    if m.get("cuda_peak_allocated_bytes") is not None:
        return m["cuda_peak_allocated_bytes"] / 1e9, "GB (CUDA peak allocated)"
    if m.get("host_rss_peak_bytes") is not None:
        return m["host_rss_peak_bytes"] / 1e9, "GB (host RSS peak; no CUDA device)"
    return None, "GB"


def _bench_rows(case: dict) -> tuple[list[str], list[dict]]:
    """One row per quantity, one cell per model, plus the ratio to the reference model."""
    models = case["models"]
    names = list(models)
    rows: list[dict] = []

    def add(what: str, unit: str, get, digits: int = 3, reason=None):
        cells = []
        for n in names:
            m = models[n]
            if "error" in m:
                cells.append(f"error: {m['error']}")
                continue
            v = get(m)
            r = reason(m) if reason else None
            r = str(r).removeprefix("not measured: ") if r else None
            cells.append(fmt(v, digits) if v is not None else f"not measured ({r})" if r else "not measured")
        rows.append({"what": what, "unit": unit, "cells": cells})

    add("Parameters", "M", lambda m: m["params"] / 1e6 if m.get("params") is not None else None)
    add("Forward FLOPs per image", "GFLOPs", lambda m: (m.get("flops_per_image_fwd") or 0) / 1e9 or None)
    add("Train step", "s/iter (median)", lambda m: _get(m, "train.s_per_iter.median"), 4,
        lambda m: _get(m, "train.error"))
    add("Train throughput", "images/s (median)", lambda m: _get(m, "train.images_per_s.median"), 2)
    add("Train peak memory", _mem(next(iter(models.values())).get("train"))[1],
        lambda m: _mem(m.get("train"))[0], 3)
    add("Train MFU", "fraction of bf16 peak", lambda m: _get(m, "train.mfu"), 4, lambda m: _get(m, "train.mfu_reason"))
    add("Train energy", "J/image", lambda m: _get(m, "train.nvml.energy_j_per_image"), 3,
        lambda m: _get(m, "train.nvml_reason") or _get(m, "train.nvml.energy_reason"))
    add("Train power", "W (mean)", lambda m: _get(m, "train.nvml.power_w.mean"), 1,
        lambda m: _get(m, "train.nvml_reason") or _get(m, "train.nvml.power_w_reason"))
    first = next((m for m in models.values() if "sample" in m), {})
    for sname, batches in (first.get("sample") or {}).items():
        for b in batches:
            pre = f"sample.{sname}.{b}"
            tag = f"Sampling {sname}, {b.replace('_', ' ')}"
            add(f"{tag}: time", "s/image (median)", lambda m, pre=pre: _get(m, f"{pre}.s_per_image.median"), 4,
                lambda m, pre=pre: _get(m, f"{pre}.error"))
            add(f"{tag}: throughput", "images/s (median)", lambda m, pre=pre: _get(m, f"{pre}.images_per_s.median"), 2)
            add(f"{tag}: peak memory", _mem(_get(first, pre))[1], lambda m, pre=pre: _mem(_get(m, pre))[0], 3)
            add(f"{tag}: MFU", "fraction of bf16 peak", lambda m, pre=pre: _get(m, f"{pre}.mfu"), 4,
                lambda m, pre=pre: _get(m, f"{pre}.mfu_reason"))
            add(f"{tag}: energy", "J/image", lambda m, pre=pre: _get(m, f"{pre}.nvml.energy_j_per_image"), 3,
                lambda m, pre=pre: _get(m, f"{pre}.nvml_reason") or _get(m, f"{pre}.nvml.energy_reason"))
    return [models[n].get("label", n) for n in names], rows


def _bench_entry(label: str, res: Any, path: str, colors: dict | None = None) -> dict:
    missing = missing_keys(res, ("cases", "env"))
    if missing:
        return {"label": label, "message": unrecognised("bench", path, missing)["message"], "cases": [], "env": {}}
    cases = []
    for cid, case in res["cases"].items():
        if not isinstance(case, dict) or not isinstance(case.get("models"), dict):
            return {"label": label, "message": unrecognised("bench", path, [f"cases.{cid}.models"])["message"],
                    "cases": [], "env": {}}
        columns, rows = _bench_rows(case)
        ratios = [{"pair": pair, "what": k, "value": fmt(v, 3)} for pair, r in (case.get("ratios") or {}).items()
                  for k, v in r.items()]
        thr = {models_label: [] for models_label in columns}
        groups = []
        for r in rows:
            if "throughput" in r["what"]:
                groups.append(r["what"].replace(" throughput", "").replace("Sampling ", ""))
                for lab, c in zip(columns, r["cells"]):
                    try:
                        thr[lab].append(float(c.replace(",", "")))
                    except ValueError:
                        thr[lab].append(None)
        keys = dict(zip(columns, map(str, case["models"])))  # label -> model key
        svg = bar_chart(groups, thr, title=f"Throughput, {cid} (images/s, higher is better)", y_label="images/s",
                        colors={lab: (colors or {})[k] for lab, k in keys.items() if k in (colors or {})},
                        models=keys)
        cases.append({"id": cid, "columns": columns, "rows": rows, "ratios": ratios, "svg": svg})
    env = res["env"]
    env_text = {k: str(env.get(k)) for k in ("device_name", "device", "dtype", "torch", "cuda", "driver", "compile",
                                            "git_rev", "platform") if k in env}
    return {"label": label, "message": "", "cases": cases, "env": env_text, "scale": str(res.get("scale", "?")),
            "profile": str(res.get("profile", "?")), "peak": str(_get(res, "peak.source") or
                                                                   _get(res, "peak.reason") or "n/a")}


def bench_section(results: Any, recordings: list[dict], colors: dict | None = None) -> dict:
    """bench/results.json (deco_bench/stages/bench.py, schema deco-bench/bench-results/1) measured by this run,
    and bench/recordings/*.json: committed GPU results in the same format, labelled as recordings."""
    out = {"ran": results is not None, "message": "" if results is not None else
           not_ran("bench", PATHS["bench"])["message"], "tables": [], "recordings": []}
    if results is not None:
        out["tables"].append(_bench_entry("this run", results, PATHS["bench"], colors))
    for r in recordings:
        e = _bench_entry(r.get("file", "recording"), r, r.get("file", "recording"), colors)
        rec = r.get("recording") or {}
        e["recording"] = {"date": str(rec.get("date", "unknown date")), "note": str(rec.get("note", ""))}
        out["recordings"].append(e)
    return out
