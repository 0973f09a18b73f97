"""Typed, frozen parameters loaded strictly from params.yaml.

Every number of a run lives in params.yaml (grouped by stage, as DVC expects). `load_params` turns the YAML into
the dataclasses below and validates everything at once: unknown keys, missing keys, wrong types, out-of-range
values and incompatible combinations are all collected and reported together in one `ConfigError`, each naming
its dotted key and the accepted values. Nothing expensive starts before this passes.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from deco_bench.io import DecoBenchError


class ConfigError(DecoBenchError, ValueError):
    """One or more parameters are invalid; `problems` lists (key, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        lines = [f"  - {key}: {msg}" for key, msg in problems]
        super().__init__(f"{len(problems)} invalid parameter(s):\n" + "\n".join(lines))


def _f(default: Any = dataclasses.MISSING, *, lo: float | None = None, hi: float | None = None,
       lo_open: bool = False, choices: tuple | None = None, help: str = "") -> Any:
    """A dataclass field with validation metadata (range, choices) and a help text."""
    meta = {"lo": lo, "hi": hi, "lo_open": lo_open, "choices": choices, "help": help}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunParams:
    profile: str = _f("default", help="name of the profile these parameters came from")
    scale: Literal["embedded", "paper"] = _f("embedded", help="how the report labels every reproduced number")
    seed: int = _f(0, lo=0)
    device: Literal["auto", "cpu", "cuda"] = _f("auto")
    nproc: int = _f(1, lo=1, help="processes per node for train/sample (torchrun when > 1)")
    nnodes: int = _f(1, lo=1)
    threads: int = _f(0, lo=0, help="torch CPU threads (0: torch's default)")


@dataclass(frozen=True)
class DataParams:
    source: Literal["embedded", "imagenet"] = _f("embedded")
    imagenet_root: str = _f("", help="ImageNet train folder (class sub-folders); empty: env DECO_IMAGENET")
    resolution: int = _f(32, lo=8)
    num_classes: int = _f(8, lo=1)
    train_per_class: int = _f(128, lo=1, help="embedded: training crops per class")
    ref_per_class: int = _f(64, lo=1, help="embedded: held-out reference crops per class")
    on_bad_image: Literal["skip", "fail"] = _f("skip")


@dataclass(frozen=True)
class ModelEntry:
    """One trained variant: a preset, architecture overrides and its loss recipe."""
    preset: str = _f()
    arch: dict = _f({}, help="ModelConfig fields overriding the preset (ablations)")
    group: Literal["main", "ablation"] = _f("main")
    label: str = _f("", help="how the report names this variant")
    freqfm_weight: float = _f(1.0, lo=0.0)
    freqfm_quality: int = _f(85, lo=1, hi=100)
    freqfm_gamma: float = _f(1.0, lo=0.0)
    repa_weight: float = _f(0.5, lo=0.0)
    null_condition_p: float = _f(0.1, lo=0.0, hi=1.0)
    init_from: str = _f("", help="EMA weights file (final.pt or an eval checkpoint) to start from instead of a "
                                 "random init, e.g. the 256 model for the 512 fine-tune; ignored when resuming")


@dataclass(frozen=True)
class TrainParams:
    steps: int = _f(300, lo=1)
    global_batch: int = _f(32, lo=1)
    grad_accum: int = _f(1, lo=1)
    lr: float = _f(1e-4, lo=0.0, lo_open=True)
    weight_decay: float = _f(0.0, lo=0.0)
    beta1: float = _f(0.9, lo=0.0, hi=1.0)
    beta2: float = _f(0.999, lo=0.0, hi=1.0)
    grad_clip: float = _f(0.0, lo=0.0, help="max grad norm; 0 disables clipping")
    ema_decay: float = _f(0.9999, lo=0.0, hi=1.0)
    lognorm_t: bool = _f(True)
    timeshift: float = _f(1.0, lo=0.0, lo_open=True)
    repa_encoder: Literal["small", "dinov2-b14", "none"] = _f("small")
    repa_encoder_weights: str = _f("", help="local DINOv2 ViT-B/14 weights file (dinov2-b14 only)")
    repa_align_layer: int = _f(8, lo=1)
    precision: Literal["auto", "fp32", "bf16"] = _f("auto", help="auto: bf16 autocast on CUDA, fp32 on CPU")
    compile: bool = _f(False)
    num_workers: int = _f(0, lo=0, help="DataLoader worker processes reading training images (0: in the main process)")
    ckpt_every: int = _f(100, lo=1)
    keep_last: int = _f(2, lo=1)
    eval_ckpt_steps: list = _f([], help="steps at which EMA weights are kept for the convergence curve")
    log_every: int = _f(10, lo=1)


@dataclass(frozen=True)
class SampleParams:
    num_images: int = _f(256, lo=1)
    batch_size: int = _f(64, lo=1)
    sampler: Literal["euler", "heun"] = _f("euler")
    num_steps: int = _f(50, lo=1)
    cfg_scale: float = _f(1.0, lo=0.0)
    guidance_interval: list = _f([0.0, 1.0], help="[lo, hi]: CFG applies for lo < t <= hi (t = 1 is data)")
    timeshift: float = _f(1.0, lo=0.0, lo_open=True)
    seed: int = _f(0, lo=0)
    shard_size: int = _f(256, lo=1, help="images per resumable shard")
    seeds: list = _f([], help="extra sampling seeds for a mean +- std over seeds (empty: only `seed`)")


@dataclass(frozen=True)
class EvalParams:
    feature_space: Literal["embed", "inception"] = _f("embed")
    inception_weights: str = _f("", help="torch-fidelity Inception weights file (pt_inception-2015-12-05)")
    reference: str = _f("", help="ADM reference batch (.npz); empty: the prepare stage's reference")
    bootstrap: int = _f(200, lo=0)
    batch_size: int = _f(50, lo=1)
    evalnet_epochs: int = _f(8, lo=1)
    evalnet_width: int = _f(32, lo=4)


@dataclass(frozen=True)
class Params:
    run: RunParams
    data: DataParams
    models: dict  # name -> ModelEntry
    train: TrainParams
    sample: SampleParams
    evaluate: EvalParams
    extra: dict = field(default_factory=dict)  # sections owned by later stages (bench, spectrum, convergence...)

    def model(self, name: str) -> ModelEntry:
        if name not in self.models:
            raise ConfigError([(f"models.{name}", f"no such model; defined: {sorted(self.models)}")])
        return self.models[name]


# Sections validated here; other top-level sections are validated by the stage that owns them.
_SECTIONS: dict[str, type] = {
    "run": RunParams, "data": DataParams, "train": TrainParams, "sample": SampleParams, "evaluate": EvalParams,
}
EXTRA_SECTIONS = ("bench", "spectrum", "convergence", "report", "ablation")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(c) for c in typing.get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _check_value(key: str, value: Any, tp: Any, meta: Mapping[str, Any], problems: list) -> Any:
    """Type-check (with int->float widening) and range-check one value; returns the coerced value."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            problems.append((key, f"got {value!r}; accepted values: {', '.join(map(repr, allowed))}"))
        return value
    ok: bool
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            try:
                value = float(value)
            except OverflowError:  # a YAML integer beyond float range
                problems.append((key, "got an integer too large for a float; must be a finite number"))
                return value
            if not math.isfinite(value):
                problems.append((key, f"got {value!r}; must be a finite number"))
                return value
    elif tp is str:
        ok = isinstance(value, str)
    elif tp in (list, dict):
        ok = isinstance(value, tp)
    else:  # pragma: no cover - schema error
        raise TypeError(f"unsupported schema type {tp} for {key}")
    if not ok:
        problems.append((key, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}"))
        return value
    lo, hi = meta.get("lo"), meta.get("hi")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
            rel = ">" if meta.get("lo_open") else ">="
            problems.append((key, f"got {value}; must be {rel} {lo}" + (f" and <= {hi}" if hi is not None else "")))
        elif hi is not None and value > hi:
            problems.append((key, f"got {value}; must be <= {hi}" + (f" and >= {lo}" if lo is not None else "")))
    return value


def _build(cls: type, raw: Any, prefix: str, problems: list) -> Any:
    if not isinstance(raw, Mapping):
        problems.append((prefix, f"expected a mapping of keys, got {type(raw).__name__} {raw!r}"))
        raw = {}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields), key=str)
    for k in unknown:
        problems.append((f"{prefix}.{k}", f"unknown key; accepted keys: {', '.join(sorted(fields))}"))
    values = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}"
        if name in raw:
            values[name] = _check_value(key, raw[name], hints[name], f.metadata, problems)
        elif f.default is not dataclasses.MISSING:
            values[name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            values[name] = f.default_factory()  # type: ignore[misc]
        else:
            problems.append((key, "missing required key"))
            values[name] = None
    return cls(**values)


def _check_combinations(p: Params, problems: list) -> None:
    """Checks that involve several keys. A check runs only when every key it reads passed its own type and range
    check, so one parameter file yields all its problems at once and a wrongly typed value cannot crash a check."""
    from deco_bench.data.embedded import MAX_EMBEDDED_CLASSES
    from deco_bench.models import PRESETS, ModelConfig

    reported = [k for k, _ in problems]

    def ok(*keys: str) -> bool:
        return not any(r == k or r.startswith(k + ".") or k.startswith(r + ".") for r in reported for k in keys)

    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    for name, m in p.models.items():
        key = f"models.{name}"
        if not ok(f"{key}.preset", f"{key}.arch"):
            continue
        if m.preset not in PRESETS:
            problems.append((f"{key}.preset", f"unknown preset {m.preset!r}; accepted values: {', '.join(sorted(PRESETS))}"))
            continue
        bad = sorted(set(m.arch) - model_fields, key=str)
        for b in bad:
            problems.append((f"{key}.arch.{b}", f"unknown architecture field; accepted: {', '.join(sorted(model_fields))}"))
        if bad or not ok("data.num_classes"):
            continue
        # As model_config() builds it: the data's class count unless the entry overrides it. ModelConfig checks
        # its own fields; its ValueError is reported under the arch key it names instead of escaping.
        try:
            cfg = dataclasses.replace(PRESETS[m.preset], **{"num_classes": p.data.num_classes, **m.arch})
        except (TypeError, ValueError) as e:
            named = re.search(r"ModelConfig\.(\w+)", str(e))
            field_key = f"{key}.arch.{named.group(1)}" if named and named.group(1) in m.arch else f"{key}.arch"
            problems.append((field_key, f"{e} (preset {m.preset} with arch {m.arch})"))
            continue
        if ok("data.resolution") and p.data.resolution % cfg.patch_size:
            problems.append(("data.resolution", f"{p.data.resolution} is not divisible by the patch size "
                                                f"{cfg.patch_size} of {key} ({m.preset})"))
        if (ok("train.repa_encoder", "train.repa_align_layer", f"{key}.repa_weight") and p.train.repa_encoder != "none"
                and m.repa_weight > 0 and p.train.repa_align_layer > cfg.depth):
            problems.append(("train.repa_align_layer", f"{p.train.repa_align_layer} exceeds the {cfg.depth} DiT blocks "
                                                       f"of {key}; accepted: 1..{cfg.depth}"))
        if cfg.num_classes < p.data.num_classes:
            problems.append((f"{key}", f"the model has {cfg.num_classes} classes but data.num_classes is "
                                       f"{p.data.num_classes}"))
    if (ok("data.source", "data.num_classes") and p.data.source == "embedded"
            and p.data.num_classes > MAX_EMBEDDED_CLASSES):
        problems.append(("data.num_classes", f"{p.data.num_classes} classes; the embedded dataset has 1.."
                                             f"{MAX_EMBEDDED_CLASSES} (one per bundled photograph)"))
    if ok("run.nproc", "run.nnodes", "train.global_batch", "train.grad_accum"):
        world = p.run.nproc * p.run.nnodes
        if p.train.global_batch % (world * p.train.grad_accum):
            problems.append(("train.global_batch", f"{p.train.global_batch} is not divisible by processes x "
                                                   f"grad_accum = {world} x {p.train.grad_accum}"))
    gi = p.sample.guidance_interval
    if not ok("sample.guidance_interval"):
        pass
    elif len(gi) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in gi):
        problems.append(("sample.guidance_interval", f"got {gi!r}; expected [lo, hi] with 0 <= lo < hi <= 1"))
    elif not (0.0 <= gi[0] < gi[1] <= 1.0):
        problems.append(("sample.guidance_interval", f"got {gi!r}; expected 0 <= lo < hi <= 1 (reversed or outside [0, 1])"))
    steps = p.train.eval_ckpt_steps
    if not ok("train.eval_ckpt_steps", "train.steps"):
        pass
    elif not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= p.train.steps for s in steps):
        problems.append(("train.eval_ckpt_steps", f"got {steps!r}; expected integers in 1..train.steps ({p.train.steps})"))
    elif list(steps) != sorted(set(steps)):
        problems.append(("train.eval_ckpt_steps", f"got {steps!r}; expected strictly increasing steps"))
    if ok("sample.seeds") and not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in p.sample.seeds):
        problems.append(("sample.seeds", f"got {p.sample.seeds!r}; expected a list of non-negative integers"))
    if (ok("data.source", "evaluate.feature_space", "evaluate.inception_weights") and p.data.source == "embedded"
            and p.evaluate.feature_space == "inception" and not p.evaluate.inception_weights):
        problems.append(("evaluate.inception_weights", "feature_space 'inception' needs a local Inception weights file"))
    if (ok("train.repa_encoder", "train.repa_encoder_weights") and p.train.repa_encoder == "dinov2-b14"
            and not p.train.repa_encoder_weights):
        problems.append(("train.repa_encoder_weights", "repa_encoder 'dinov2-b14' needs a local weights file path"))


def parse_params(raw: Any) -> Params:
    """Validate a params mapping (as read from params.yaml) into `Params`; raise ConfigError listing every problem."""
    problems: list[tuple[str, str]] = []
    if not isinstance(raw, Mapping):
        raise ConfigError([("<root>", f"expected a mapping of sections, got {type(raw).__name__}")])
    known = set(_SECTIONS) | {"models"} | set(EXTRA_SECTIONS)
    for k in sorted(set(raw) - known, key=str):
        problems.append((str(k), f"unknown section; accepted: {', '.join(sorted(known))}"))
    sections = {name: _build(cls, raw.get(name, {}), name, problems) for name, cls in _SECTIONS.items()}
    models_raw = raw.get("models")
    models: dict[str, ModelEntry] = {}
    if not isinstance(models_raw, Mapping) or not models_raw:
        problems.append(("models", "expected a non-empty mapping of model name -> {preset: ...}"))
    else:
        for name, entry in models_raw.items():
            models[str(name)] = _build(ModelEntry, entry, f"models.{name}", problems)
    extra = {k: raw[k] for k in EXTRA_SECTIONS if k in raw}
    for k, v in extra.items():
        if not isinstance(v, Mapping):
            problems.append((k, f"expected a mapping, got {type(v).__name__}"))
    params = Params(models=models, extra=dict(extra), **sections)
    _check_combinations(params, problems)
    if problems:
        raise ConfigError(problems)
    return params


def load_params(path: str | os.PathLike = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError([(str(path), "parameter file not found")])
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, ValueError) as e:  # ValueError: e.g. an integer literal beyond Python's 4300 digits
        raise ConfigError([(str(path), f"not valid YAML: {e}")]) from e
    return parse_params(raw)


def to_dict(obj: Any) -> Any:
    """Dataclasses (resolved parameters, summaries), mappings and sequences as plain JSON-ready data."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if getattr(obj, "ndim", None) == 0 and hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    return obj


def model_config(p: Params, name: str):
    """The ModelConfig of model `name`: its preset with the entry's `arch` overrides and the data's class count."""
    from deco_bench.models import get_preset

    entry = p.model(name)
    overrides = {"num_classes": p.data.num_classes, **entry.arch}
    return get_preset(entry.preset, **overrides)


__all__ = [
    "ConfigError", "Params", "RunParams", "DataParams", "ModelEntry", "TrainParams", "SampleParams", "EvalParams",
    "parse_params", "load_params", "to_dict", "model_config",
]


# Public names for the sections that later stages own (bench, spectrum, convergence, ablation): they declare their
# frozen dataclasses with `param(...)` and validate them with `build_section(...)`, exactly like the core sections.
param = _f
build_section = _build
