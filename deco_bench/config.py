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

from deco_bench.data.embedded import MAX_EMBEDDED_CLASSES
from deco_bench.io import DecoBenchError
from deco_bench.metrics.api import EMBED_NAMES, INCEPTION_NAMES, MIN_IMAGES
from deco_bench.models import PRESETS, ModelConfig, get_preset
from deco_bench.metrics.weights import DINOV2_VITB14, INCEPTION, MANIFEST, RequiredFile, by_filename

# Seeds are 32-bit: numpy's RandomState takes no more, and every seed derived from one (per step, per epoch, per
# sample) then stays inside torch's 64-bit generator seed.
MAX_SEED = 2**32 - 1
# The largest image side accepted: 8x the paper's 512 (docs/paper.md §5), far beyond what fits one GPU's memory for
# these models; it stops a typo such as 2**20 before a stage tries to allocate it.
MAX_RESOLUTION = 4096

# A model name is a folder name (runs/<name>) and part of DVC stage names (train@<name>): nothing path-like.
MODEL_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class ConfigError(DecoBenchError, ValueError):
    """One or more parameters are invalid; `problems` lists (key, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        if len(problems) == 1:  # one problem, one line: the key and what is wrong with it
            super().__init__(f"invalid parameter {problems[0][0]}: {problems[0][1]}")
            return
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
    seed: int = _f(0, lo=0, hi=MAX_SEED)
    device: Literal["auto", "cpu", "cuda"] = _f("auto")
    nproc: int = _f(1, lo=1, help="processes per node for train/sample (torchrun when > 1)")
    nnodes: int = _f(1, lo=1)
    threads: int = _f(0, lo=0, help="torch CPU threads (0: torch's default)")


@dataclass(frozen=True)
class DataParams:
    source: Literal["embedded", "imagenet"] = _f("embedded")
    imagenet_root: str = _f("", help="ImageNet train folder (class sub-folders); empty: env DECO_IMAGENET")
    resolution: int = _f(32, lo=8, hi=MAX_RESOLUTION)
    num_classes: int = _f(8, lo=1)
    train_per_class: int = _f(128, lo=1, help="embedded: training crops per class")
    ref_per_class: int = _f(64, lo=1, help="embedded: held-out reference crops per class")
    crop_scale: list = _f([0.35, 0.9], help="embedded: [lo, hi] crop side as a fraction of the photograph's short side")
    on_bad_image: Literal["skip", "fail"] = _f("skip")


@dataclass(frozen=True)
class ModelEntry:
    """One trained variant: a preset, architecture overrides and its loss recipe."""
    preset: str = _f()
    arch: dict = _f({}, help="ModelConfig fields overriding the preset (ablations; prediction: x trains JiT+REPA)")
    label: str = _f("", help="how the report names this variant")
    freqfm_weight: float = _f(1.0, lo=0.0)
    freqfm_quality: int = _f(85, lo=1, hi=100)
    freqfm_gamma: float = _f(1.0, lo=0.0)
    repa_weight: float = _f(0.5, lo=0.0)
    null_condition_p: float = _f(0.1, lo=0.0, hi=1.0)
    init_from: str = _f("", help="EMA weights file (final.pt or an eval checkpoint) to start from instead of a "
                                 "random init, e.g. the 256 model for the 512 fine-tune; ignored when resuming")


@dataclass(frozen=True)
class ReleasedRow:
    """One paper Table 2 row regenerated from a released official checkpoint: no training, the row's sampler."""
    checkpoint: str = _f(help="the official .ckpt (Lightning state_dict: denoiser.*, ema_denoiser.*)")
    preset: str = _f(help="the architecture the checkpoint must fit exactly (keys, shapes, parameter count)")
    epochs: int = _f(lo=1, help="training epochs of the checkpoint: with the resolution, sampler and NFE it selects "
                                "the paper row")
    checkpoint_sha256: str = _f("", help="expected sha256; empty: none is published, it is hashed on first use and "
                                         "recorded with every number")
    weights: Literal["ema", "raw"] = _f("ema", help="ema: ema_denoiser.* (what the paper samples); raw: denoiser.*")
    label: str = _f("", help="how the report names this row")
    sampler: Literal["euler", "heun"] = _f("euler")
    num_steps: int = _f(100, lo=1)
    cfg_scale: float = _f(1.0, lo=0.0)
    guidance_interval: list = _f([0.1, 1.0], help="[lo, hi]: CFG applies for lo < t <= hi (t = 1 is data)")
    timeshift: float = _f(1.0, lo=0.0, lo_open=True)


@dataclass(frozen=True)
class TrainParams:
    steps: int = _f(300, lo=1)
    global_batch: int = _f(32, lo=1)
    grad_accum: int = _f(1, lo=1)
    lr: float = _f(1e-4, lo=0.0, lo_open=True)
    lr_warmup: int = _f(0, lo=0, help="steps of linear warm-up from lr / lr_warmup to lr (0: none, the paper's)")
    lr_schedule: Literal["constant", "cosine"] = _f(
        "constant", help="after warm-up: constant (the paper's), or cosine decay to 0 at train.steps")
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
    compile: Literal["none", "blocks", "full"] = _f(
        "none", help="none: eager; blocks: each DiT block and the pixel decoder compiled; full: the whole objective")
    activation_checkpointing: bool = _f(False, help="recompute each DiT block's activations in backward (memory)")
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
    seed: int = _f(0, lo=0, hi=MAX_SEED)
    shard_size: int = _f(256, lo=1, help="images per resumable shard")


@dataclass(frozen=True)
class EvalParams:
    feature_space: Literal["embed", "inception"] = _f("embed")
    inception_weights: str = _f("", help="torch-fidelity Inception weights file (pt_inception-2015-12-05)")
    inception_sha256: str = _f("manifest", help="sha256 the Inception weights must have: manifest (the published "
                                                "one), a hash of a copy you trust, or none (tests with random weights)")
    reference: str = _f("", help="ADM reference batch (.npz); empty: the prepare stage's reference")
    bootstrap: int = _f(200, lo=0)
    batch_size: int = _f(50, lo=1)
    evalnet_epochs: int = _f(8, lo=1)
    evalnet_width: int = _f(32, lo=4)


@dataclass(frozen=True)
class SpectrumParams:
    num_images: int = _f(32, lo=1, help="images per model (paper: 10K)")
    num_steps: int = _f(25, lo=1, help="Euler steps, every one analysed (paper: 100)")
    batch_size: int = _f(32, lo=1)
    seed: int = _f(0, lo=0, hi=MAX_SEED, help="noise seed: image i uses (seed, i), as the sample stage")
    cut: int = _f(36, lo=1, hi=63, help="first zig-zag index of the high band (36: u + v >= 8)")


@dataclass(frozen=True)
class AblationParams:
    metric: Literal["auto", "fd_embed", "kid_embed", "is_embed", "fid", "sfid", "kid", "is"] = _f(
        "auto", help="the metric ranked against the paper's FID; auto: fid at paper scale, else fd_embed")


@dataclass(frozen=True)
class ConvergenceParams:
    deco: str = _f("deco", help="the model whose speed-up is measured (a key of `models`)")
    baseline: str = _f("baseline", help="the model it is measured against (a key of `models`)")
    metric: str = _f("auto", help="auto: fd_embed (embed feature space) or fid (inception); any metric key")
    num_images: int = _f(64, lo=2, help="samples per checkpoint (fewer than sample.num_images: 2 models x K ckpts)")
    num_steps: int = _f(8, lo=1, help="sampler steps per image for the curve")
    target: Literal["best", "final"] = _f("best", help="the baseline value DeCo must reach")
    bootstrap: int = _f(40, lo=0, help="bootstrap replicates for the curve and speed-up intervals (0: none)")


# The Table 2 metrics a paper-scale verdict compares, and the default tolerance of each.
REPORT_METRICS = ("fid", "sfid", "is", "precision", "recall")


@dataclass(frozen=True)
class ReportParams:
    tolerance: dict = _f({"fid": 0.1, "sfid": 0.1, "is": 1.0, "precision": 0.01, "recall": 0.01},
                         help="paper-scale verdict: |ours - paper| <= max(tolerance, half-width of our interval)")
    per_class: int = _f(6, lo=1, help="sample grid: images per class")
    max_classes: int = _f(8, lo=1, help="sample grid: classes shown per model")


@dataclass(frozen=True)
class BenchSize:
    """One resolution with its training batch and its sampling throughput batch (sampling also runs at batch 1)."""
    resolution: int = _f(32, lo=8, hi=MAX_RESOLUTION)
    train_batch: int = _f(32, lo=1)
    sample_batch: int = _f(16, lo=1)


@dataclass(frozen=True)
class SampleSetting:
    """An Euler sampling setting; `name` keys it in the result (e.g. "euler100_cfg" for the paper's 100x2)."""
    name: str = _f("euler50")
    num_steps: int = _f(50, lo=1)
    cfg_scale: float = _f(1.0, lo=0.0)
    guidance_interval: tuple = _f((0.0, 1.0), help="[lo, hi]: CFG applies for lo < t <= hi")


@dataclass(frozen=True)
class BenchParams:
    models: tuple = _f(("deco", "baseline"), help="keys of `models`, measured side by side with fresh weights")
    sizes: tuple = _f((BenchSize(),), help="list of {resolution, train_batch, sample_batch}")
    precision: Literal["auto", "fp32", "bf16"] = _f("auto", help="auto: bf16 autocast on CUDA, float32 on CPU")
    compile: tuple = _f(("none",), help="train.compile modes measured side by side, e.g. [none] or [none, blocks, full]")
    warmup: int = _f(2, lo=0)
    repeats: int = _f(5, lo=1)
    sampling: tuple = _f((SampleSetting(),), help="list of {name, num_steps, cfg_scale, guidance_interval}")
    sample_repeats: int = _f(3, lo=1)
    sample_timed_steps: int = _f(0, lo=0, help="0: time whole trajectories; k > 0: time k steps, extrapolate")
    repa_encoder: Literal["auto", "small", "dinov2-b14", "none"] = _f(
        "auto", help="auto: train.repa_encoder (random weights: only its cost matters here)")
    nvml_interval_s: float = _f(0.05, lo=0.001, hi=10.0)
    peak_tflops: float = _f(0.0, lo=0.0, help="0: the documented dense bf16 peak of the device; > 0: use it")
    peak_source: str = _f("", help="where a peak_tflops override comes from (measured how, or which datasheet)")


@dataclass(frozen=True)
class Params:
    run: RunParams
    data: DataParams
    models: dict  # name -> ModelEntry
    train: TrainParams
    sample: SampleParams
    evaluate: EvalParams
    spectrum: SpectrumParams
    ablation: AblationParams
    convergence: ConvergenceParams
    bench: BenchParams
    report: ReportParams
    released: dict = dataclasses.field(default_factory=dict)  # name -> ReleasedRow (optional section)

    def model(self, name: str) -> ModelEntry:
        if name not in self.models:
            raise ConfigError([(f"models.{name}", f"no such model; defined: {sorted(self.models)}")])
        return self.models[name]


# Every section of params.yaml but `models` (a mapping of entries) and `bench` (nested lists: _build_bench).
_SECTIONS: dict[str, type] = {
    "run": RunParams, "data": DataParams, "train": TrainParams, "sample": SampleParams, "evaluate": EvalParams,
    "spectrum": SpectrumParams, "ablation": AblationParams, "convergence": ConvergenceParams, "report": ReportParams,
}


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
    elif tp is tuple:  # a YAML list kept immutable
        ok = isinstance(value, (list, tuple))
        value = tuple(value) if ok else value
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


def _values(cls: type, raw: Any, prefix: str, problems: list, required: bool = True,
            skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of `cls` (but `skip`) from a mapping, every value type- and range-checked. With `required`,
    every key must be present (params.yaml is the single source of numbers); otherwise a missing key takes the
    field's default."""
    if not isinstance(raw, Mapping):
        problems.append((prefix, f"expected a mapping of keys, got {type(raw).__name__} {raw!r}"))
        raw, required = {}, False  # one problem for the section, not one per key it lacks
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields), key=str)
    for k in unknown:
        problems.append((f"{prefix}.{k}", f"unknown key; accepted keys: {', '.join(sorted(fields))}"))
    values = {}
    for name, f in fields.items():
        if name in skip:
            continue
        key = f"{prefix}.{name}"
        if name in raw:
            values[name] = _check_value(key, raw[name], hints[name], f.metadata, problems)
        elif required or (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING):
            problems.append((key, "missing required key"))
            values[name] = f.default if f.default is not dataclasses.MISSING else None
        elif f.default is not dataclasses.MISSING:
            values[name] = f.default
        else:
            values[name] = f.default_factory()  # type: ignore[misc]
    return values


def _build(cls: type, raw: Any, prefix: str, problems: list, required: bool = True) -> Any:
    return cls(**_values(cls, raw, prefix, problems, required))


def _build_list(cls: type, raw: Any, prefix: str, problems: list, what: str) -> tuple:
    """A tuple of `cls` from a list of mappings (every key required), each item named `prefix[i]`."""
    if not isinstance(raw, list):
        problems.append((prefix, f"got {raw!r}; expected a list of {what}"))
        return ()
    return tuple(_build(cls, item, f"{prefix}[{i}]", problems) for i, item in enumerate(raw))


def _build_bench(raw: Any, problems: list) -> BenchParams:
    """The `bench:` section: flat keys as `_build` does, the nested lists item by item."""
    if not isinstance(raw, Mapping):
        problems.append(("bench", f"expected a mapping of keys, got {type(raw).__name__} {raw!r}"))
        raw = {}
    nested = ("models", "sizes", "compile", "sampling")
    flat = _values(BenchParams, raw, "bench", problems, skip=nested)
    for k in sorted(set(nested) - set(raw)):
        problems.append((f"bench.{k}", "missing required key"))
    models = raw.get("models", [])
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models) \
            or len(set(models)) != len(models):
        problems.append(("bench.models", f"got {models!r}; expected a non-empty list of distinct keys of `models`"))
        models = []
    compile_ = raw.get("compile", ["none"])
    modes = typing.get_args(typing.get_type_hints(TrainParams)["compile"])
    if not (isinstance(compile_, list) and compile_ and all(isinstance(c, str) and c in modes for c in compile_)
            and len(set(compile_)) == len(compile_)):
        problems.append(("bench.compile", f"got {compile_!r}; expected a list of distinct modes out of "
                                          f"{', '.join(modes)}, e.g. [none] or [none, blocks, full]"))
        compile_ = ["none"]
    sizes = _build_list(BenchSize, raw.get("sizes", []), "bench.sizes", problems,
                        "{resolution, train_batch, sample_batch}")
    if "sizes" in raw and not sizes and isinstance(raw["sizes"], list):
        problems.append(("bench.sizes", "expected at least one {resolution, train_batch, sample_batch}"))
    sampling = []
    for i, item in enumerate(raw.get("sampling", []) if isinstance(raw.get("sampling"), list) else []):
        key = f"bench.sampling[{i}]"
        before = len(problems)
        setting = _build(SampleSetting, item, key, problems)
        gi, ok = setting.guidance_interval, len(problems) == before
        if ok and not (isinstance(gi, tuple) and len(gi) == 2 and all(_is_number(v) for v in gi)
                       and 0 <= gi[0] < gi[1] <= 1):
            problems.append((f"{key}.guidance_interval", f"got {gi!r}; expected [lo, hi] with 0 <= lo < hi <= 1"))
            ok = False
        if isinstance(setting.name, str) and (not setting.name or "." in setting.name
                                              or setting.name in {s.name for s in sampling}):
            problems.append((f"{key}.name", f"got {setting.name!r}; expected a unique non-empty name without dots"))
            ok = False
        if ok:
            sampling.append(dataclasses.replace(setting, guidance_interval=(float(gi[0]), float(gi[1])),
                                                cfg_scale=float(setting.cfg_scale)))
    if "sampling" in raw and not isinstance(raw["sampling"], list):
        problems.append(("bench.sampling", f"got {raw['sampling']!r}; expected a list of {{name, num_steps, "
                                           "cfg_scale, guidance_interval}} (may be empty)"))
    if _is_number(flat["peak_tflops"]) and flat["peak_tflops"] > 0 and not flat["peak_source"]:
        problems.append(("bench.peak_source", "a peak_tflops override needs a peak_source saying where it comes from"))
    return BenchParams(models=tuple(models), sizes=sizes, compile=tuple(compile_), sampling=tuple(sampling), **flat)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)



def _check_combinations(p: Params, problems: list) -> None:
    """Checks that involve several keys. A check runs only when every key it reads passed its own type and range
    check, so one parameter file yields all its problems at once and a wrongly typed value cannot crash a check."""

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
    cs = p.data.crop_scale
    if ok("data.crop_scale") and not (len(cs) == 2 and all(_is_number(v) for v in cs) and 0 < cs[0] <= cs[1] <= 1):
        problems.append(("data.crop_scale", f"got {cs!r}; expected [lo, hi] with 0 < lo <= hi <= 1 (the crop side "
                                            "as a fraction of the photograph's short side)"))
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
    if (ok("data.source", "evaluate.feature_space", "evaluate.inception_weights") and p.data.source == "embedded"
            and p.evaluate.feature_space == "inception" and not p.evaluate.inception_weights):
        problems.append(("evaluate.inception_weights", "feature_space 'inception' needs a local Inception weights file"))
    if (ok("train.repa_encoder", "train.repa_encoder_weights") and p.train.repa_encoder == "dinov2-b14"
            and not p.train.repa_encoder_weights):
        problems.append(("train.repa_encoder_weights", "repa_encoder 'dinov2-b14' needs a local weights file path"))
    _check_stage_sections(p, ok, problems)


def _check_stage_sections(p: Params, ok, problems: list) -> None:
    """Rules of the later stages' sections (sample sets, convergence, spectrum, bench, report) across sections."""

    if ok("sample.num_images", "data.num_classes") and p.sample.num_images < p.data.num_classes:
        problems.append(("sample.num_images", f"{p.sample.num_images} images cannot hold one of each of the "
                                              f"{p.data.num_classes} classes (data.num_classes)"))
    # every metric needs MIN_IMAGES on each side (metrics/api.py): refused here, not after training
    if ok("sample.num_images") and p.sample.num_images < MIN_IMAGES:
        problems.append(("sample.num_images", f"{p.sample.num_images} images; every metric needs at least {MIN_IMAGES} "
                                              f"(precision/recall use each image's 3rd nearest neighbour)"))
    if ok("convergence.num_images") and p.convergence.num_images < MIN_IMAGES:
        problems.append(("convergence.num_images", f"{p.convergence.num_images} images per checkpoint; every metric "
                                                   f"needs at least {MIN_IMAGES}"))
    if (ok("data.source", "data.ref_per_class", "data.num_classes") and p.data.source == "embedded"
            and p.data.ref_per_class * p.data.num_classes < MIN_IMAGES):
        problems.append(("data.ref_per_class", f"the embedded reference would hold {p.data.ref_per_class} x "
                                               f"{p.data.num_classes} = {p.data.ref_per_class * p.data.num_classes} "
                                               f"images; every metric needs at least {MIN_IMAGES}"))
    if ok("sample.num_images", "sample.shard_size") and p.sample.shard_size > p.sample.num_images:
        problems.append(("sample.shard_size", f"{p.sample.shard_size} is larger than sample.num_images "
                                              f"({p.sample.num_images})"))
    for key in ("deco", "baseline"):
        name = getattr(p.convergence, key)
        if ok(f"convergence.{key}") and p.models and name not in p.models:
            problems.append((f"convergence.{key}", f"{name!r} is not a model; defined: {', '.join(sorted(p.models))}"))
    if ok("convergence.deco", "convergence.baseline") and p.convergence.deco == p.convergence.baseline:
        problems.append(("convergence.baseline", f"must differ from convergence.deco ({p.convergence.deco!r})"))
    names = EMBED_NAMES if p.evaluate.feature_space == "embed" else INCEPTION_NAMES
    allowed = [n for n in vars(names).values() if n is not None]
    if ok("convergence.metric", "evaluate.feature_space") and p.convergence.metric not in ("auto", *allowed):
        problems.append(("convergence.metric", f"got {p.convergence.metric!r}; accepted with evaluate.feature_space "
                                               f"{p.evaluate.feature_space!r}: auto, {', '.join(allowed)}"))
    if ok("train.eval_ckpt_steps") and not p.train.eval_ckpt_steps:
        problems.append(("train.eval_ckpt_steps", "empty: the convergence stage needs evaluation checkpoints"))
    if ok("data.resolution") and "data.resolution" not in dict(problems) and p.data.resolution % 8:
        problems.append(("data.resolution", f"{p.data.resolution} is not a multiple of 8 (the 8x8 block DCT of "
                                            f"FreqFM and of the spectrum study)"))
    for m in p.bench.models if ok("bench.models") else ():
        if p.models and m not in p.models:
            problems.append(("bench.models", f"{m!r} is not a key of `models`; defined: {', '.join(p.models)}"))
    for k, v in p.report.tolerance.items() if ok("report.tolerance") else ():
        if k not in REPORT_METRICS:
            problems.append((f"report.tolerance.{k}", f"unknown metric; accepted: {', '.join(REPORT_METRICS)}"))
        elif not _is_number(v) or v < 0:
            problems.append((f"report.tolerance.{k}", f"must be a number >= 0, got {v!r}"))


def parse_params(raw: Any) -> Params:
    """Validate a params mapping (as read from params.yaml) into `Params`; raise ConfigError listing every problem."""
    problems: list[tuple[str, str]] = []
    if not isinstance(raw, Mapping):
        raise ConfigError([("<root>", f"expected a mapping of sections, got {type(raw).__name__}")])
    known = set(_SECTIONS) | {"models", "bench"}
    for k in sorted(set(raw) - known - {"released"}, key=str):
        problems.append((str(k), f"unknown section; accepted: {', '.join(sorted(known | {'released'}))}"))
    for k in sorted(known - set(raw)):
        problems.append((k, "missing section (params.yaml holds every section; see experiments/default.yaml)"))
    sections = {name: _build(cls, raw.get(name, {}), name, problems) if name in raw else _build(cls, {}, name, [])
                for name, cls in _SECTIONS.items()}
    bench = _build_bench(raw["bench"], problems) if "bench" in raw else BenchParams()
    models_raw = raw.get("models")
    models: dict[str, ModelEntry] = {}
    if not isinstance(models_raw, Mapping) or not models_raw:
        if "models" in raw:
            problems.append(("models", "expected a non-empty mapping of model name -> {preset: ...}"))
    else:
        for name, entry in models_raw.items():
            if not isinstance(name, str) or not MODEL_KEY.fullmatch(name):
                shown = name if isinstance(name, str) and name.isprintable() else repr(name)  # one line, always
                problems.append((f"models.{shown}", f"invalid model name {name!r}: a name becomes a folder and a "
                                                     f"stage name, so it must match {MODEL_KEY.pattern} (lower-case "
                                                     f"letters, digits, '_' and '-', at most 64 characters)"))
                continue
            # a model entry is a preset plus the keys it changes: the loss recipe keys default to the official
            # recipe (docs/paper.md §5.1)
            models[name] = _build(ModelEntry, entry, f"models.{name}", problems, required=False)
    params = Params(models=models, bench=bench, released=_build_released(raw.get("released", {}), problems),
                    **sections)
    _check_combinations(params, problems)
    e = params.evaluate
    if params.released and not (e.feature_space == "inception" and e.inception_weights and e.reference):
        problems.append(("evaluate", "the released rows are scored with the ADM protocol: set "
                                     "evaluate.feature_space: inception, evaluate.inception_weights and "
                                     "evaluate.reference (see experiments/released-256.yaml)"))
    if problems:
        raise ConfigError(problems)
    return params


def _build_released(raw: Any, problems: list) -> dict:
    """`released`: row name -> ReleasedRow (absent or {} in every profile but the released-* ones)."""
    if raw is None or raw == {}:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(("released", f"expected a mapping of row name -> {{checkpoint: ..., preset: ...}}, got {raw!r}"))
        return {}
    rows = {}
    for name, entry in raw.items():
        if not isinstance(name, str) or not MODEL_KEY.fullmatch(name) or name == "results":
            problems.append((f"released.{name!r}", f"invalid row name: it becomes a folder and a stage name, so it "
                                                   f"must match {MODEL_KEY.pattern} and not be 'results'"))
            continue
        if not isinstance(entry, Mapping):
            problems.append((f"released.{name}", f"expected a mapping {{checkpoint: ..., preset: ..., epochs: ...}}, "
                                                 f"got {entry!r}"))
            continue
        row = _build(ReleasedRow, entry, f"released.{name}", problems, required=False)
        if row.preset is not None and row.preset not in PRESETS:
            problems.append((f"released.{name}.preset", f"unknown preset {row.preset!r}; known: {', '.join(PRESETS)}"))
        gi = row.guidance_interval
        if not (isinstance(gi, list) and len(gi) == 2 and all(_is_number(v) for v in gi) and 0 <= gi[0] < gi[1] <= 1):
            problems.append((f"released.{name}.guidance_interval", f"got {gi!r}; expected [lo, hi] with "
                                                                   "0 <= lo < hi <= 1"))
        sha = row.checkpoint_sha256
        if sha and not re.fullmatch(r"[0-9a-f]{64}", str(sha)):
            problems.append((f"released.{name}.checkpoint_sha256", "expected 64 lower-case hex digits, or empty"))
        rows[name] = row
    return rows


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping holding the same key twice (plain YAML keeps the last one silently,
    and DVC refuses the file only at `dvc repro` time)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKeyError(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: the base class reports it
                continue
        return super().construct_mapping(node, deep=deep)


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, first: int, again: int):
        super().__init__(f"key {key!r} appears twice: line {first} and line {again}")
        self.key, self.first, self.again = key, first, again


def read_yaml(path: str | os.PathLike) -> Any:
    """A parameter or profile file as plain data; invalid YAML or a duplicate key is a ConfigError naming the file
    (and, for a duplicate, the key and both line numbers)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError([(str(path), "parameter file not found")])
    try:
        return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except DuplicateKeyError as e:
        raise ConfigError([(str(path), str(e))]) from e
    except (yaml.YAMLError, ValueError, RecursionError) as e:  # ValueError: an integer beyond Python's 4300 digits
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        what = getattr(e, "problem", None) or " ".join(str(e).split())  # one line, whatever the YAML library says
        raise ConfigError([(str(path), f"not valid YAML{where}: {what}")]) from e
    except OSError as e:
        raise ConfigError([(str(path), f"cannot be read: {e.strerror or e}")]) from e


def load_params(path: str | os.PathLike = "params.yaml") -> Params:
    return parse_params(read_yaml(path))


def required_files(params: Params) -> list[RequiredFile]:
    """Every weights/reference file `params` names, in the order the stages need them (train, then evaluate).

    train.repa_encoder_weights (the DINOv2 ViT-B/14 manifest entry for repa_encoder 'dinov2-b14'),
    models.<name>.init_from (your own checkpoints: presence only), evaluate.inception_weights (the Inception
    manifest entry, whatever the file is called: its content is what is checked) and evaluate.reference (the ADM
    manifest entry of that file name; another file name is a reference of your own: presence only). Empty values
    name nothing.
    """
    out: list[RequiredFile] = []
    t = params.train
    if t.repa_encoder_weights:
        if t.repa_encoder == "dinov2-b14":
            out.append(RequiredFile("train.repa_encoder_weights", Path(t.repa_encoder_weights),
                                    MANIFEST[DINOV2_VITB14]))
        else:
            out.append(RequiredFile("train.repa_encoder_weights", Path(t.repa_encoder_weights), None,
                                    f"weights of the '{t.repa_encoder}' REPA encoder, a file of your own"))
    for name, model in params.models.items():
        if model.init_from:
            out.append(RequiredFile(f"models.{name}.init_from", Path(model.init_from), None,
                                    "a deco-bench EMA checkpoint of an earlier run of your own (runs/<model>/final.pt "
                                    "or runs/<model>/eval_ckpts/step_*.pt), not a download; see the profile's "
                                    "comments"))
    for name, row in params.released.items():
        entry = by_filename(Path(row.checkpoint).name)
        out.append(RequiredFile(f"released.{name}.checkpoint", Path(row.checkpoint), entry,
                                "" if entry else "an official-format checkpoint of your own"))
    e = params.evaluate
    if e.inception_weights:
        out.append(RequiredFile("evaluate.inception_weights", Path(e.inception_weights), MANIFEST[INCEPTION]))
    if e.reference:
        ref = Path(e.reference)
        entry = by_filename(ref.name)
        out.append(RequiredFile("evaluate.reference", ref, entry, "" if entry else
                                "an ADM-format reference batch (.npz) of your own; the manifest lists ADM's "
                                + " and ".join(m.filename for m in MANIFEST.values() if m.name.startswith("adm-"))))
    return out


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

    entry = p.model(name)
    overrides = {"num_classes": p.data.num_classes, **entry.arch}
    return get_preset(entry.preset, **overrides)


__all__ = [
    "ConfigError", "Params", "RunParams", "DataParams", "ModelEntry", "TrainParams", "SampleParams", "EvalParams",
    "SpectrumParams", "AblationParams", "ConvergenceParams", "BenchParams", "BenchSize", "SampleSetting",
    "ReportParams", "MODEL_KEY", "parse_params", "load_params", "to_dict", "model_config", "required_files",
]

