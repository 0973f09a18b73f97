"""Reading the stage outputs: load_inputs(root) -> one plain dict of everything the report shows.

Reads the standard paths of docs/outputs.md (PATHS, plus per model evaluation/<m>.json, metrics/train/<m>.json,
previews/<m>.json and previews/<m>.npz) for exactly the models of params `models:` (other files in evaluation/, metrics/,
previews/ are stray outputs of removed models and are not read); absent files are None / missing keys, unreadable
ones are listed in "errors". Also here: the named problems a section states instead of its data -- not_ran (no
output file), unrecognised (a file without the keys its section needs, found by missing_keys).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import yaml

from deco_bench.bench.env import git_revision
from deco_bench.io import DecoBenchError, load_npz
from deco_bench.report.grid import png_data_uri, sample_grid

# Standard paths (docs/outputs.md), relative to the repository root.
BENCH_SCHEMA = "deco-bench/bench-results/1"  # deco_bench/stages/bench.py SCHEMA
PATHS = {
    "params": "params.yaml", "dvc_lock": "dvc.lock", "data_info": "data/info.json",
    "bench": "bench/results.json", "bench_recordings": "bench/recordings", "spectrum": "spectrum/spectrum.json",
    "ablation": "ablation/tables.json", "curves": "convergence/curves.json", "speedup": "convergence/summary.json",
    "real": "metrics/evalnet/real.json", "heldout": "data/heldout.npz",
}


def not_ran(stage: str, path: str) -> dict:
    return {"ran": False, "message": f"The {stage} stage did not run (no {path})."}


def unrecognised(stage: str, path: str, missing: list[str]) -> dict:
    return {"ran": False, "message": f"The {stage} output {path} is in an unrecognised format "
                                     f"(missing keys: {', '.join(missing)}); its section is left out."}


def missing_keys(obj: Any, keys: tuple) -> list[str]:
    """The keys of `keys` that `obj` lacks (all of them when it is not a dict): those unrecognised() names."""
    if not isinstance(obj, dict):
        return list(keys)
    return [k for k in keys if k not in obj]


def _read_json(path: Path, errors: dict, shape: Callable[[Any], list[str]] | None = None) -> Any:
    """A JSON output, or None when absent, unreadable or (with `shape`) not shaped as its section needs: the last
    two are recorded in `errors` and stated in the page instead of crashing it."""
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as e:
        errors[str(path)] = f"could not be read: {e}"
        return None
    problems = shape(doc) if shape is not None else []
    if problems:
        errors[str(path)] = f"has an unexpected shape ({'; '.join(problems[:3])}); it is left out of the report"
        return None
    return doc


# ---- shapes: what a section needs of a file (a key it reads must hold the type it reads it as) ------------------


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _typed(doc: dict, key: str, ok: Callable[[Any], bool], what: str) -> list[str]:
    if key in doc and not ok(doc[key]):
        return [f"'{key}' should be {what}, not {type(doc[key]).__name__} {json.dumps(doc[key])[:40]}"]
    return []


def _mapping_of(doc: dict, key: str, ok: Callable[[Any], bool], what: str) -> list[str]:
    v = doc.get(key, {})
    if not isinstance(v, dict):
        return [f"'{key}' should be a mapping, not {type(v).__name__}"]
    return [f"'{key}.{k}' should be {what}" for k, x in v.items() if not ok(x)][:1]


def metrics_shape(doc: Any) -> list[str]:
    """evaluation/<m>.json (evaluate stage; metrics/<m>.json is its numbers-only DVC metrics form): metrics {key:
    number}, ci {key: [lo, hi]}, bootstrap {key: [numbers]}."""
    if not isinstance(doc, dict):
        return [f"a mapping is expected, not {type(doc).__name__}"]
    return [*_mapping_of(doc, "metrics", _is_num, "a number"),
            *_mapping_of(doc, "ci", lambda v: isinstance(v, list) and len(v) == 2 and all(map(_is_num, v)),
                         "[lo, hi]"),
            *_mapping_of(doc, "bootstrap", lambda v: isinstance(v, list) and all(map(_is_num, v)), "a list of numbers"),
            *[p for k in ("scale", "feature_space", "label") for p in _typed(doc, k, lambda v: isinstance(v, str), "text")],
            *_typed(doc, "num_images", _is_num, "a number")]


def train_summary_shape(doc: Any) -> list[str]:
    if not isinstance(doc, dict):
        return [f"a mapping is expected, not {type(doc).__name__}"]
    return [problem for key in ("steps", "loss", "images_per_s", "wall_s", "params_m")
            for problem in _typed(doc, key, _is_num, "a number")]


def sample_info_shape(doc: Any) -> list[str]:
    if not isinstance(doc, dict):
        return [f"a mapping is expected, not {type(doc).__name__}"]
    return [*_typed(doc, "cfg_scale", _is_num, "a number"), *_typed(doc, "sampler", lambda v: isinstance(v, str), "text"),
            *_typed(doc, "num_steps", _is_num, "a number")]


def data_info_shape(doc: Any) -> list[str]:
    if not isinstance(doc, dict):
        return [f"a mapping is expected, not {type(doc).__name__}"]
    return _typed(doc, "class_names", lambda v: isinstance(v, list) and all(isinstance(c, str) for c in v),
                  "a list of names")


def dvc_lock_shape(doc: Any) -> list[str]:
    stages = doc.get("stages", {}) if isinstance(doc, dict) else None
    if not isinstance(stages, dict) or not all(
            isinstance(st, dict) and all(isinstance(st.get(k, []), list) and all(isinstance(d, dict) for d in st.get(k, []))
                                         for k in ("deps", "outs")) for st in stages.values()):
        return ["'stages' should map each stage to its deps and outs lists"]
    return []


def any_mapping_or_list(doc: Any) -> list[str]:
    return [] if isinstance(doc, (dict, list)) else [f"a mapping or a list is expected, not {type(doc).__name__}"]


def _mtime(path: Path) -> str | None:
    try:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds")
    except OSError:
        return None


def _versions() -> dict:
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


def _grid_of(root: Path, path: Path, errors: dict, per_class: int, max_classes: int) -> dict | None:
    """The grid of one ADM-format file with labels (rows = classes), or None when absent or unreadable."""
    if not path.exists():
        return None
    try:
        arrays = load_npz(path, keys=["arr_0", "labels"])
        grid, classes = sample_grid(arrays["arr_0"], arrays["labels"], per_class=per_class, max_classes=max_classes)
    except (DecoBenchError, ValueError, KeyError, OSError) as e:
        errors[str(path)] = f"could not be read: {e}"
        return None
    return {"uri": png_data_uri(grid), "classes": classes, "per_class": per_class,
            "num_images": int(arrays["arr_0"].shape[0]), "tile": int(grid.shape[0] // max(len(classes), 1)),
            "width": int(grid.shape[1]), "height": int(grid.shape[0]), "path": str(path.relative_to(root))}


def _grids(root: Path, model_keys: list[str], errors: dict, per_class: int, max_classes: int) -> dict:
    grids = {m: _grid_of(root, root / "previews" / f"{m}.npz", errors, per_class, max_classes) for m in model_keys}
    return {m: g for m, g in grids.items() if g is not None}


def load_inputs(root: str | os.PathLike = ".", *, per_class: int = 6, max_classes: int = 8,
                environment: bool = True) -> dict:
    """Everything the report reads, from the standard paths under `root`. Absent files are None / missing keys;
    unreadable ones are listed in "errors" (the report says so instead of crashing)."""
    root = Path(root)
    errors: dict[str, str] = {}
    params = None
    if (root / PATHS["params"]).exists():
        try:
            params = yaml.safe_load((root / PATHS["params"]).read_text())
        except (OSError, yaml.YAMLError) as e:
            errors[PATHS["params"]] = f"could not be read: {e}"
        if params is not None and not isinstance(params, dict):
            errors[PATHS["params"]] = f"has an unexpected shape (a mapping is expected, not {type(params).__name__})"
            params = None
    models = (params or {}).get("models")
    model_keys = [str(k) for k in models] if isinstance(models, dict) else []  # only these: never a stray file
    per_model: dict[str, dict] = {}
    dates: dict[str, str] = {}
    for m in model_keys:
        entry = {}
        for name, rel, shape in (("metrics", f"evaluation/{m}.json", metrics_shape),
                                 ("train_summary", f"metrics/train/{m}.json", train_summary_shape),
                                 ("sample_info", f"previews/{m}.json", sample_info_shape)):
            v = _read_json(root / rel, errors, shape)
            if v is not None:
                entry[name] = v
                dates[rel] = _mtime(root / rel)
        per_model[m] = entry
    single = {}
    for name in ("data_info", "bench", "spectrum", "ablation", "curves", "speedup", "real"):
        single[name] = _read_json(root / PATHS[name], errors,
                                  data_info_shape if name == "data_info" else any_mapping_or_list)
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
        if dvc_lock is not None and dvc_lock_shape(dvc_lock):
            errors[PATHS["dvc_lock"]] = f"has an unexpected shape ({dvc_lock_shape(dvc_lock)[0]})"
            dvc_lock = None
    git = git_revision(root)
    provenance = {"git_rev": git["git_revision"], "git_dirty": bool(git["git_dirty"]),
                  "dvc_lock": dvc_lock, "dates": dates}
    if environment:
        provenance.update(versions=_versions(), hardware=_hardware())
    return {"params": params, "models": per_model, **single, "bench_recordings": recordings,
            "grids": _grids(root, model_keys, errors, per_class, max_classes),
            "real_grid": _grid_of(root, root / PATHS["heldout"], errors, per_class, max_classes),
            "provenance": provenance,
            "errors": errors}
