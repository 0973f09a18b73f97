"""The efficiency section: bench/results.json measured by this run and the committed bench/recordings/*.json, one
table per case (a row per quantity, a cell per model; the quantities no model measured folded into one line
that says why), the ratios, and training and sampling throughput as two charts (one scale each)."""

from __future__ import annotations

from typing import Any

from deco_bench.report.fmt import fmt
from deco_bench.report.inputs import PATHS, missing_keys, not_ran, unrecognised
from deco_bench.report.svg import hbar_chart


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


def _bench_rows(case: dict) -> tuple[list[str], list[dict], str]:
    """One row per quantity, one cell per model; rows that no model measured (each says why: a GPU-only quantity
    on a CPU run, MFU of a float32 run) are folded into one line that lists them with the reasons."""
    models = case["models"]
    names = list(models)
    rows: list[dict] = []

    def add(what: str, unit: str, get, digits: int = 3, reason=None, kind: str = "", phase: str = "") -> None:
        cells, values, reasons = [], [], []
        for n in names:
            m = models[n]
            if "error" in m:
                cells.append(f"error: {m['error']}")
                values.append(None)
                continue
            v = get(m)
            r = reason(m) if reason else None
            r = str(r).removeprefix("not measured: ") if r else None
            cells.append(fmt(v, digits) if v is not None else f"not measured ({r})" if r else "not measured")
            values.append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None)
            if v is None:
                reasons.append(r)
        unmeasured = bool(names) and len(reasons) == len(names)  # no model has a value (nor an error) for it
        rows.append({"what": what, "unit": unit, "cells": cells, "values": values, "kind": kind or what,
                     "phase": phase, "unmeasured": unmeasured,
                     "reason": "; ".join(dict.fromkeys(r or "no reason recorded" for r in reasons))})

    add("Parameters", "M", lambda m: m["params"] / 1e6 if m.get("params") is not None else None)
    add("Forward FLOPs per image", "GFLOPs", lambda m: (m.get("flops_per_image_fwd") or 0) / 1e9 or None)
    add("Train step", "s/iter (median)", lambda m: _get(m, "train.s_per_iter.median"), 4,
        lambda m: _get(m, "train.error"), "time", "training")
    add("Train throughput", "images/s (median)", lambda m: _get(m, "train.images_per_s.median"), 2,
        kind="throughput", phase="training")
    add("Train peak memory", _mem(next(iter(models.values())).get("train"))[1],
        lambda m: _mem(m.get("train"))[0], 3, kind="peak memory", phase="training")
    add("Train MFU", "fraction of bf16 peak", lambda m: _get(m, "train.mfu"), 4, lambda m: _get(m, "train.mfu_reason"),
        "MFU", "training")
    add("Train energy", "J/image", lambda m: _get(m, "train.nvml.energy_j_per_image"), 3,
        lambda m: _get(m, "train.nvml_reason") or _get(m, "train.nvml.energy_reason"), "energy", "training")
    add("Train power", "W (mean)", lambda m: _get(m, "train.nvml.power_w.mean"), 1,
        lambda m: _get(m, "train.nvml_reason") or _get(m, "train.nvml.power_w_reason"), "power", "training")
    first = next((m for m in models.values() if "sample" in m), {})
    for sname, batches in (first.get("sample") or {}).items():
        for b in batches:
            pre = f"sample.{sname}.{b}"
            phase = f"{sname}, {b.replace('_', ' ')}"
            tag = f"Sampling {phase}"
            add(f"{tag}: time", "s/image (median)", lambda m, pre=pre: _get(m, f"{pre}.s_per_image.median"), 4,
                lambda m, pre=pre: _get(m, f"{pre}.error"), "time", phase)
            add(f"{tag}: throughput", "images/s (median)", lambda m, pre=pre: _get(m, f"{pre}.images_per_s.median"), 2,
                kind="throughput", phase=phase)
            add(f"{tag}: peak memory", _mem(_get(first, pre))[1], lambda m, pre=pre: _mem(_get(m, pre))[0], 3,
                kind="peak memory", phase=phase)
            add(f"{tag}: MFU", "fraction of bf16 peak", lambda m, pre=pre: _get(m, f"{pre}.mfu"), 4,
                lambda m, pre=pre: _get(m, f"{pre}.mfu_reason"), "MFU", phase)
            add(f"{tag}: energy", "J/image", lambda m, pre=pre: _get(m, f"{pre}.nvml.energy_j_per_image"), 3,
                lambda m, pre=pre: _get(m, f"{pre}.nvml_reason") or _get(m, f"{pre}.nvml.energy_reason"), "energy",
                phase)
    shown = [r for r in rows if not r["unmeasured"]]
    return [models[n].get("label", n) for n in names], shown, _folded_text([r for r in rows if r["unmeasured"]])


def _folded_text(rows: list[dict]) -> str:
    """One line for every quantity no model measured: grouped by the reason, each quantity with the phases
    (training, sampling settings) it was not measured in."""
    if not rows:
        return ""
    sampling = list(dict.fromkeys(r["phase"] for r in rows if r["phase"] not in ("", "training")))
    by_reason: dict[str, dict[str, list[str]]] = {}
    for r in rows:
        by_reason.setdefault(r["reason"], {}).setdefault(r["kind"], []).append(r["phase"])

    def phases(ps: list[str]) -> str:
        samp = [p for p in ps if p not in ("", "training")]
        parts = ["training"] if "training" in ps else []
        if samp and len(samp) == len(sampling) and len(samp) > 1:
            parts.append(f"all {len(samp)} sampling settings")
        elif samp:
            parts.append("sampling " + ", ".join(samp))
        return f" ({' and '.join(parts)})" if parts else ""

    groups = [", ".join(f"{kind}{phases(ps)}" for kind, ps in kinds.items()) + f": {reason}"
              for reason, kinds in by_reason.items()]
    return f"Not measured ({len(rows)} quantit{'y' if len(rows) == 1 else 'ies'}, left out of the table): " \
           + "; ".join(groups) + "."


def _throughput_charts(cid: str, columns: list[str], rows: list[dict], keys: dict, colors: dict,
                       train_batch: Any) -> list[str]:
    """Training and sampling throughput as separate charts (each on its own scale: a train step of a batch and
    one sampled image differ by orders of magnitude), horizontal bars so the setting names stay readable."""
    col = {lab: (colors or {})[k] for lab, k in keys.items() if k in (colors or {})}
    charts = []
    for phase_kind, title in (("training", "Training throughput"), ("sampling", "Sampling throughput")):
        sel = [r for r in rows if r["kind"] == "throughput" and (r["phase"] == "training") == (phase_kind == "training")]
        if not sel or all(v is None for r in sel for v in r["values"]):
            continue
        groups = [f"train step, batch {train_batch}" if phase_kind == "training" else r["phase"] for r in sel]
        values = {lab: [r["values"][i] for r in sel] for i, lab in enumerate(columns)}
        charts.append(hbar_chart(groups, values, title=f"{title}, {cid} (images/s, higher is better)",
                                 x_label="images/s (median)", colors=col, models=keys, digits=2))
    return charts


def _bench_entry(label: str, res: Any, path: str, colors: dict | None = None) -> dict:
    missing = missing_keys(res, ("cases", "env"))
    if missing:
        return {"label": label, "message": unrecognised("bench", path, missing)["message"], "cases": [], "env": {}}
    cases = []
    for cid, case in res["cases"].items():
        if not isinstance(case, dict) or not isinstance(case.get("models"), dict):
            return {"label": label, "message": unrecognised("bench", path, [f"cases.{cid}.models"])["message"],
                    "cases": [], "env": {}}
        columns, rows, folded = _bench_rows(case)
        ratios = [{"pair": pair, "what": k, "value": fmt(v, 3)} for pair, r in (case.get("ratios") or {}).items()
                  for k, v in r.items()]
        keys = dict(zip(columns, map(str, case["models"])))  # label -> model key
        cases.append({"id": cid, "columns": columns, "rows": rows, "folded": folded, "ratios": ratios,
                      "svgs": _throughput_charts(cid, columns, rows, keys, colors or {},
                                                  case.get("train_batch", "?"))})
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
