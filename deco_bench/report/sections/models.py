"""The models of the run: their rows in the models table (model_rows), the checked training step of their weights
(train_steps), and one chart colour per model shared by every chart (chart_colors)."""

from __future__ import annotations

from deco_bench.report.fmt import fmt
from deco_bench.report.inputs import PATHS
from deco_bench.report.steps import StepSource, check_steps, model_sources
from deco_bench.report.svg import model_colors


def train_steps(inputs: dict, params: dict) -> dict:
    """The training step of every model's weights-derived outputs, checked (report.steps.check_steps) against
    params train.steps: {"steps": N or None (no output claims one), "by_model": {model: N}, "files": {path: N}}.
    Raises TrainStepMismatchError naming each file that claims another step or records none."""
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


def model_rows(inputs: dict, params: dict, steps: dict | None = None) -> list[dict]:
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
            parts.append(f"{(entries.get(key) or {}).get('preset', '?')}, {fmt(ts.get('params_m'), 3)}M params")
        if key in checked:  # N as every present output of these weights records it (checked in train_steps)
            parts.append(f"{fmt(checked[key])} training steps")
        if data.get("resolution"):
            parts.append(f"{data['resolution']} px {data.get('source', '')}".strip())
        out.append({"key": key, "label": label, "has_metrics": met is not None,
                    "scale": (met or {}).get("scale"), "protocol": "; ".join(parts) or "no outputs yet",
                    "metrics": (met or {}).get("metrics") or {}, "ci": (met or {}).get("ci") or {}})
    return out
