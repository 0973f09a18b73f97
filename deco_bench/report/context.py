"""The report's context: every stage's JSON output -> one dict the templates render. Never recomputes a metric.

    load_inputs(root)            I/O: reads the standard paths of docs/outputs.md (absent or unreadable files recorded)
                                 for exactly the models of params `models:` (other files in metrics/, previews/
                                 are stray outputs of removed models and are not read)
    build_context(inputs, ...)   pure: inputs -> {section: {...}}; each section is either present with its data
                                 or {"ran": False, "message": "The X stage did not run (no <path>)."}; raises
                                 report.steps.TrainStepMismatchError when an output of a model's weights claims
                                 another training step than params train.steps (the report states N from them)

Honesty rules (the issue's): an embedded-scale number never goes in a paper-number column, and embedded metrics
carry their own names ("FD (embedded feature net)", never "FID"). At embedded scale the Table 2 / Table 1 rows
say "not comparable: embedded scale" and our DeCo-vs-baseline result sits in its own section; at paper scale a
paper row is compared with ours only when our run used that row's configuration (model size, resolution, epochs,
NFE, sampler), within the stated tolerance.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from deco_bench import paper

IMAGENET_TRAIN_IMAGES = 1_281_167  # epochs = steps x global batch / this (docs/paper.md §2.0)

METRIC_NAMES = {
    "fid": "FID", "sfid": "sFID", "is": "IS", "precision": "Precision", "recall": "Recall", "kid": "KID",
    "fd_embed": "FD (embedded feature net)", "is_embed": "IS (embedded feature net)",
    "precision_embed": "Precision (embedded feature net)", "recall_embed": "Recall (embedded feature net)",
    "kid_embed": "KID (embedded feature net)", "fd_dinov2": "FD (DINOv2)",
}
LOWER_IS_BETTER = {"fid", "sfid", "kid", "fd_embed", "kid_embed", "fd_dinov2"}
# An embedded metric and the paper metric whose direction it stands in for (directions only, never values).
PAPER_COUNTERPART = {"fd_embed": "fid", "is_embed": "is", "precision_embed": "precision", "recall_embed": "recall"}
# Paper-scale tolerance: |ours - paper| <= max(TOLERANCE[k], half-width of our bootstrap interval).
DEFAULT_TOLERANCE = {"fid": 0.1, "sfid": 0.1, "is": 1.0, "precision": 0.01, "recall": 0.01}
PAPER_METRICS_T2 = ("fid", "sfid", "is", "precision", "recall")
PAPER_METRICS_T1 = ("fid", "sfid", "is", "recall")

# Standard paths (docs/outputs.md), relative to the repository root.
BENCH_SCHEMA = "deco-bench/bench-results/1"  # deco_bench/stages/bench.py SCHEMA
PATHS = {
    "params": "params.yaml", "dvc_lock": "dvc.lock", "data_info": "data/info.json",
    "bench": "bench/results.json", "bench_recordings": "bench/recordings", "spectrum": "spectrum/spectrum.json",
    "ablation": "ablation/tables.json", "curves": "convergence/curves.json", "speedup": "convergence/speedup.json",
}


def not_ran(stage: str, path: str) -> dict:
    return {"ran": False, "message": f"The {stage} stage did not run (no {path})."}


def unrecognised(stage: str, path: str, missing: list[str]) -> dict:
    return {"ran": False, "message": f"The {stage} output {path} is in an unrecognised format "
                                     f"(missing keys: {', '.join(missing)}); its section is left out."}


def fmt(v: Any, digits: int = 3) -> str:
    """A number as text; None (not measured) as 'n/a' -- never an empty cell."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            return "n/a"
        return f"{v:.{digits}f}" if abs(v) < 1e5 else f"{v:.4g}"
    return str(v)


def fmt_interval(iv: Any, digits: int = 3) -> str:
    if not iv or len(iv) != 2:
        return "n/a"
    return f"[{fmt(iv[0], digits)}, {fmt(iv[1], digits)}]"


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, key)


# ------------------------------------------------------------------------------------------------------ I/O


def _read_json(path: Path, errors: dict) -> Any:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        errors[str(path)] = f"could not be read: {e}"
        return None


def _mtime(path: Path) -> str | None:
    try:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds")
    except OSError:
        return None


def _git(root: Path, *args: str) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def _versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "numpy", "dvc", "torch-fidelity", "clean-fid", "jinja2", "deco-bench"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _hardware() -> dict:
    hw = {"platform": platform.platform(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
          "gpu": "none visible"}
    try:
        import torch

        if torch.cuda.is_available():
            hw["gpu"] = torch.cuda.get_device_name(0)
    except Exception as e:  # the report must render without a working torch
        hw["gpu"] = f"unknown ({type(e).__name__})"
    return hw


def sample_grid(images: np.ndarray, labels: np.ndarray, *, per_class: int, max_classes: int,
                max_tile: int = 64) -> tuple[np.ndarray, list[int]]:
    """Rows = classes (the first `max_classes` present, in order), `per_class` images each (first by index).

    Tiles larger than `max_tile` pixels are subsampled by an integer stride so a 256 px run stays small.
    Returns (grid uint8 (rows*h, per_class*w, 3), the row classes). Missing cells stay white.
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"samples must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {labels.shape}")
    stride = max(1, math.ceil(images.shape[1] / max_tile))
    tiles = images[:, ::stride, ::stride]
    h, w = tiles.shape[1:3]
    classes = [int(c) for c in dict.fromkeys(labels.tolist())][:max_classes]
    grid = np.full((len(classes) * h, per_class * w, 3), 255, np.uint8)
    for r, c in enumerate(classes):
        for k, i in enumerate(np.nonzero(labels == c)[0][:per_class]):
            grid[r * h:(r + 1) * h, k * w:(k + 1) * w] = tiles[i]
    return grid, classes


def png_data_uri(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _grids(root: Path, model_keys: list[str], errors: dict, per_class: int, max_classes: int) -> dict:
    from deco_bench.io import DecoBenchError, load_npz

    out = {}
    for m in model_keys:
        path = root / "previews" / f"{m}.npz"
        if not path.exists():
            continue
        try:
            arrays = load_npz(path, keys=["arr_0", "labels"])
            grid, classes = sample_grid(arrays["arr_0"], arrays["labels"], per_class=per_class,
                                        max_classes=max_classes)
        except (DecoBenchError, ValueError, KeyError, OSError) as e:
            errors[str(path)] = f"could not be read: {e}"
            continue
        out[m] = {"uri": png_data_uri(grid), "classes": classes, "per_class": per_class,
                  "num_images": int(arrays["arr_0"].shape[0]), "tile": int(grid.shape[0] // max(len(classes), 1)),
                  "width": int(grid.shape[1]), "height": int(grid.shape[0]), "path": str(path.relative_to(root))}
    return out


def load_inputs(root: str | os.PathLike = ".", *, per_class: int = 6, max_classes: int = 8,
                environment: bool = True) -> dict:
    """Everything the report reads, from the standard paths under `root`. Absent files are None / missing keys;
    unreadable ones are listed in "errors" (the report says so instead of crashing)."""
    import yaml

    root = Path(root)
    errors: dict[str, str] = {}
    params = None
    if (root / PATHS["params"]).exists():
        try:
            params = yaml.safe_load((root / PATHS["params"]).read_text())
        except (OSError, yaml.YAMLError) as e:
            errors[PATHS["params"]] = f"could not be read: {e}"
    models = (params or {}).get("models")
    model_keys = [str(k) for k in models] if isinstance(models, dict) else []  # only these: never a stray file
    per_model: dict[str, dict] = {}
    dates: dict[str, str] = {}
    for m in model_keys:
        entry = {}
        for name, rel in (("metrics", f"metrics/{m}.json"), ("train_summary", f"metrics/train/{m}.json"),
                          ("sample_info", f"previews/{m}.json")):
            v = _read_json(root / rel, errors)
            if v is not None:
                entry[name] = v
                dates[rel] = _mtime(root / rel)
        per_model[m] = entry
    single = {}
    for name in ("data_info", "bench", "spectrum", "ablation", "curves", "speedup"):
        single[name] = _read_json(root / PATHS[name], errors)
        if single[name] is not None:
            dates[PATHS[name]] = _mtime(root / PATHS[name])
    recordings = []
    rec_dir = root / PATHS["bench_recordings"]
    for p in sorted(rec_dir.glob("*.json")) if rec_dir.is_dir() else []:
        v = _read_json(p, errors)
        if isinstance(v, dict) and v.get("schema", BENCH_SCHEMA) != BENCH_SCHEMA:
            continue  # another kind of committed result (bench/recordings/checks/ is where they belong)
        if v is not None:
            recordings.append({"file": str(p.relative_to(root)), **(v if isinstance(v, dict) else {"data": v})})
    dvc_lock = None
    if (root / PATHS["dvc_lock"]).exists():
        try:
            dvc_lock = yaml.safe_load((root / PATHS["dvc_lock"]).read_text())
        except (OSError, yaml.YAMLError) as e:
            errors[PATHS["dvc_lock"]] = f"could not be read: {e}"
    provenance = {"git_rev": _git(root, "rev-parse", "HEAD"),
                  "git_dirty": bool(_git(root, "status", "--porcelain", "--untracked-files=no")),
                  "dvc_lock": dvc_lock, "dates": dates}
    if environment:
        provenance.update(versions=_versions(), hardware=_hardware())
    return {"params": params, "models": per_model, **single, "bench_recordings": recordings,
            "grids": _grids(root, model_keys, errors, per_class, max_classes), "provenance": provenance,
            "errors": errors}


# ------------------------------------------------------------------------------------------------ pure part


def build_context(inputs: dict, *, tolerance: dict | None = None, generated_at: str = "") -> dict:
    """The whole report as data. Pure: same inputs, same context."""
    params = inputs.get("params") or {}
    tol = {**DEFAULT_TOLERANCE, **(tolerance or {})}
    run = params.get("run") or {}
    steps = train_steps(inputs, params)
    models = _models(inputs, params, steps)
    colors = chart_colors(inputs, params)
    scale = run.get("scale") or next((m["scale"] for m in models if m["scale"]), "embedded")
    return {
        "title": f"deco-bench report — profile {run.get('profile', 'unknown')}, {scale} scale",
        "generated_at": generated_at, "scale": scale, "profile": run.get("profile", "unknown"),
        "paper_protocol": paper.PROTOCOL, "models": models,
        "errors": [{"path": k, "message": v} for k, v in sorted((inputs.get("errors") or {}).items())],
        "paper_tables": paper_tables(inputs, params, models, scale, tol, steps),
        "pairs": pair_comparisons(inputs, models),
        "ablation": ablation_section(inputs.get("ablation"), list(inputs.get("models") or {})),
        "convergence": convergence_section(inputs.get("curves"), inputs.get("speedup"), colors,
                                           params.get("convergence") or {}),
        "spectrum": spectrum_section(inputs.get("spectrum"), colors),
        "bench": bench_section(inputs.get("bench"), inputs.get("bench_recordings") or [], colors),
        "samples": samples_section(inputs.get("grids") or {}, models, inputs.get("data_info")),
        "provenance": provenance_section(inputs.get("provenance") or {}, params),
    }


def train_steps(inputs: dict, params: dict) -> dict:
    """The training step of every model's weights-derived outputs, checked (report.steps.check_steps) against
    params train.steps: {"steps": N or None (no output claims one), "by_model": {model: N}, "files": {path: N}}.
    Raises TrainStepMismatchError naming each file that claims another step or records none."""
    from deco_bench.report.steps import StepSource, check_steps, model_sources

    want = (params.get("train") or {}).get("steps")
    want = want if isinstance(want, int) and not isinstance(want, bool) else None
    claims, paths = [], {}
    for m, got in (inputs.get("models") or {}).items():
        for name, src in model_sources(m).items():
            claims.append((src, got.get(name)))
            paths.setdefault(m, []).append(src.path)
    abl = inputs.get("ablation")
    if isinstance(abl, dict) and isinstance(abl.get("protocol"), dict):  # an unrecognised file is stated as such
        claims.append((StepSource(PATHS["ablation"], "protocol.train_steps", "ablation"), abl))
    found = check_steps(claims, want)
    by_model = {m: next(found[q] for q in ps if q in found) for m, ps in paths.items() if any(q in found for q in ps)}
    values = set(found.values())
    return {"steps": next(iter(values)) if values else None, "by_model": by_model, "files": found}


def chart_colors(inputs: dict, params: dict) -> dict[str, str]:
    """One colour per model for every chart of the report: by position in params `models:`, then (sorted) any
    other key a chart shows (spectrum roles, bench models of a recording, convergence roles)."""
    from deco_bench.report.svg import model_colors

    keys = [str(k) for k in (params.get("models") or {})] if isinstance(params.get("models"), dict) else []
    extra: set[str] = set()
    conv = params.get("convergence") or {}
    extra.update(str(conv.get(r, r)) for r in ("deco", "baseline"))
    curves = inputs.get("curves")
    if isinstance(curves, list):
        extra.update(str(r["model"]) for r in curves if isinstance(r, dict) and "model" in r)
    spec = inputs.get("spectrum")
    if isinstance(spec, dict) and isinstance(spec.get("models"), dict):
        extra.update(map(str, spec["models"]))
    for res in [inputs.get("bench")] + list(inputs.get("bench_recordings") or []):
        for case in ((res or {}).get("cases") or {}).values() if isinstance(res, dict) else []:
            if isinstance(case, dict) and isinstance(case.get("models"), dict):
                extra.update(map(str, case["models"]))
    return model_colors(keys + sorted(extra - set(keys)))


def _models(inputs: dict, params: dict, steps: dict | None = None) -> list[dict]:
    entries = params.get("models") or {}
    data = params.get("data") or {}
    checked = (steps or {}).get("by_model") or {}
    out = []
    for key, got in (inputs.get("models") or {}).items():
        met, ts, si = got.get("metrics"), got.get("train_summary"), got.get("sample_info")
        label = (entries.get(key) or {}).get("label") or (met or {}).get("label") or key
        parts = []
        if met:
            parts.append(f"{met.get('scale', 'unknown')} scale")
            space = met.get("feature_space")
            parts.append("Inception features (ADM protocol)" if space == "inception" else
                         "embedded feature net (not Inception; FD is not FID)" if space == "embed" else
                         f"feature space {space}")
            parts.append(f"{fmt(met.get('num_images'))} samples")
        if si:
            cfg = f", CFG {si['cfg_scale']}" if si.get("cfg_scale", 1.0) != 1.0 else ", no CFG"
            parts.append(f"{si.get('sampler', '?')} {si.get('num_steps', '?')} steps{cfg}")
        if ts:
            parts.append(f"{ts.get('preset', '?')}, {fmt(ts.get('params_m'), 3)}M params")
        if key in checked:  # N as every present output of these weights records it (checked in train_steps)
            parts.append(f"{fmt(checked[key])} training steps")
        if data.get("resolution"):
            parts.append(f"{data['resolution']} px {data.get('source', '')}".strip())
        out.append({"key": key, "label": label, "has_metrics": met is not None,
                    "scale": (met or {}).get("scale"), "protocol": "; ".join(parts) or "no outputs yet",
                    "metrics": (met or {}).get("metrics") or {}, "ci": (met or {}).get("ci") or {},
                    "metrics_path": f"metrics/{key}.json"})
    return out


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
                g.update(verdict="not run", verdict_class="na", note=f"no metrics/{mkey}.json")
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
    return {"ran": True, "scale": scale, "tolerance_text": tol_text, "tables": tables,
            "protocol": paper.PROTOCOL}


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


def pair_comparisons(inputs: dict, models: list[dict]) -> dict:
    """Our DeCo vs each other model, at whatever scale we ran: difference, its bootstrap interval, significance,
    and the direction the paper reports for the same pair (directions only; values are never compared)."""
    from deco_bench.metrics.api import compare

    raw = {k: v.get("metrics") for k, v in (inputs.get("models") or {}).items()}
    if not raw.get("deco"):
        return not_ran("evaluate", "metrics/deco.json")
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
        return {"ran": False, "message": "Only DeCo has metrics: no comparison to show (no other metrics/<m>.json)."}
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


# --------------------------------------------------------------------------------------- later stages' sections


def _require(obj: Any, keys: tuple) -> list[str]:
    if not isinstance(obj, dict):
        return list(keys)
    return [k for k in keys if k not in obj]


def spectrum_section(spec: Any, colors: dict | None = None) -> dict:
    """spectrum/spectrum.json (deco_bench/stages/spectrum.py): curves per model x tensor + summaries."""
    if spec is None:
        return not_ran("spectrum", PATHS["spectrum"])
    missing = _require(spec, ("models", "num_images", "num_steps", "cut"))
    if missing:
        return unrecognised("spectrum", PATHS["spectrum"], missing)
    from deco_bench.report.svg import Series, line_plot

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


def convergence_section(curves: Any, speedup: Any, colors: dict | None = None, conv: dict | None = None) -> dict:
    """convergence/curves.json (rows {model, label, step, images_seen, elapsed_s, metric, lo, hi}) and
    convergence/speedup.json (deco_bench.studies.convergence.summarise), from deco_bench/stages/convergence.py.
    `colors`: chart_colors; `conv`: params `convergence:` (which models are DeCo and the baseline), so the paper's
    DeCo and baseline curves have our DeCo's and baseline's colours."""
    if curves is None and speedup is None:
        return not_ran("convergence", f"{PATHS['curves']} or {PATHS['speedup']}")
    from deco_bench.report.svg import Series, line_plot

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
    rows_ok = isinstance(curves, list) and all(isinstance(r, dict) and not _require(r, ("model", "step", "metric"))
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
                         style="dashed" if m != dk else "solid", color=colors.get(str(m)), model=str(m))
                  for m, rs in by_model.items()]
        scale = (speedup or {}).get("scale", "?") if isinstance(speedup, dict) else "?"
        out["ours_svg"] = line_plot(series, title=f"Ours: {metric_name(metric)} vs training step ({scale} scale)",
                                    x_label="training step", y_label=metric_name(metric))
        out["points"] = [{"model": r.get("label", r["model"]), "step": fmt(r["step"]), "value": fmt(r["metric"]),
                          "interval": fmt_interval([r.get("lo"), r.get("hi")]) if r.get("lo") is not None else "n/a",
                          "elapsed_s": fmt(r.get("elapsed_s"), 1)} for r in curves]
    out["speedup"], out["speedup_message"] = None, ""
    if speedup is None:
        out["speedup_message"] = not_ran("convergence", PATHS["speedup"])["message"]
    elif _require(speedup, ("speedup_iters", "kind", "statement")):
        out["speedup_message"] = unrecognised("convergence", PATHS["speedup"],
                                              _require(speedup, ("speedup_iters", "kind", "statement")))["message"]
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
    missing = _require(tables, ("table4", "table1", "metric", "protocol"))
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
                     "status": a.get("status", ""), "rows": _ablation_rows(a["rows"], metric),
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
    missing = _require(res, ("cases", "env"))
    if missing:
        return {"label": label, "message": unrecognised("bench", path, missing)["message"], "cases": [], "env": {}}
    from deco_bench.report.svg import bar_chart

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


def samples_section(grids: dict, models: list[dict], data_info: Any) -> dict:
    if not grids:
        return not_ran("sample", "previews/<model>.npz")
    names = (data_info or {}).get("class_names") or []
    label = {m["key"]: m["label"] for m in models}
    out = []
    for m, g in grids.items():
        out.append({"model": m, "label": label.get(m, m), "uri": g["uri"], "width": g["width"],
                    "height": g["height"], "per_class": g["per_class"], "num_images": g["num_images"],
                    "path": g["path"],
                    "classes": [names[c] if c < len(names) else f"class {c}" for c in g["classes"]]})
    missing = [m["key"] for m in models if m["key"] not in grids]
    return {"ran": True, "grids": out,
            "missing": [f"{label.get(m, m)}: the sample stage did not run (no previews/{m}.npz)."
                        for m in missing]}


def provenance_section(prov: dict, params: dict) -> dict:
    import yaml

    lock = prov.get("dvc_lock") or {}
    stages = []
    for name, st in (lock.get("stages") or {}).items():
        files = []
        for kind in ("deps", "outs"):
            for d in st.get(kind) or []:
                files.append({"kind": kind[:-1], "path": d.get("path", "?"), "md5": d.get("md5", d.get("hash", "?"))})
        stages.append({"name": name, "files": files})
    return {"git_rev": prov.get("git_rev") or "not a git checkout (no revision)",
            "git_dirty": prov.get("git_dirty", False),
            "dvc_lock": stages, "dvc_lock_message": "" if stages else "No dvc.lock (the pipeline has not run under "
                                                                      "DVC), so input hashes are not available.",
            "params_yaml": yaml.safe_dump(params, sort_keys=False) if params else "No params.yaml found.",
            "versions": prov.get("versions") or {}, "hardware": prov.get("hardware") or {},
            "dates": [{"path": k, "date": v} for k, v in sorted((prov.get("dates") or {}).items())]}
