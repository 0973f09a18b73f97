"""The `bench:` section of params.yaml: what the benchmark stage measures, validated strictly.

The section is owned by the bench stage (config.py passes it through unvalidated). `parse_bench` checks every
key at once and raises one ConfigError naming each bad key, like config.py does for the core sections.
`paper_gpu_profile()` is the fixed configuration of the recorded GPU benchmark (scripts/gpu_bench.sh).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from deco_bench.config import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")
REPA_ENCODERS = ("auto", "small", "dinov2-b14", "none")


@dataclass(frozen=True)
class BenchSize:
    """One resolution with its training batch and its sampling throughput batch (sampling also runs at batch 1)."""
    resolution: int
    train_batch: int
    sample_batch: int


@dataclass(frozen=True)
class SampleSetting:
    """An Euler sampling setting; `name` keys it in the result (e.g. "euler100_cfg" for the paper's 100x2)."""
    name: str
    num_steps: int
    cfg_scale: float = 1.0
    guidance_interval: tuple[float, float] = (0.0, 1.0)


@dataclass(frozen=True)
class BenchParams:
    models: tuple[str, ...] = ("deco", "baseline")
    sizes: tuple[BenchSize, ...] = (BenchSize(32, 32, 16),)
    precision: str = "auto"            # auto: bf16 autocast on CUDA, float32 on CPU
    compile: tuple[bool, ...] = (False,)
    warmup: int = 2
    repeats: int = 5
    sampling: tuple[SampleSetting, ...] = (SampleSetting("euler50", 50),)
    sample_repeats: int = 3
    sample_timed_steps: int = 0        # 0: time whole trajectories; k > 0: time k steps, extrapolate (stated in JSON)
    repa_encoder: str = "auto"         # auto: train.repa_encoder (random weights: only its cost matters here)
    nvml_interval_s: float = 0.05
    peak_tflops: float = 0.0           # 0: the documented dense bf16 peak of the device (flops.PEAK_BF16); > 0: use it
    peak_source: str = ""              # where a peak_tflops override comes from (measured how, or which datasheet)


_KEYS = {f.name for f in dataclasses.fields(BenchParams)}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int(raw: Mapping, key: str, prefix: str, lo: int, default: int, problems: list) -> int:
    v = raw.get(key, default)
    if not _is_int(v) or v < lo:
        problems.append((f"{prefix}.{key}", f"got {v!r}; expected an integer >= {lo}"))
        return default
    return v


def _sizes(raw: Any, problems: list) -> tuple[BenchSize, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(("bench.sizes", f"got {raw!r}; expected a non-empty list of "
                                        "{resolution, train_batch, sample_batch}"))
        return ()
    out = []
    for i, item in enumerate(raw):
        key = f"bench.sizes[{i}]"
        if not isinstance(item, Mapping):
            problems.append((key, f"got {item!r}; expected {{resolution, train_batch, sample_batch}}"))
            continue
        for k in sorted(set(item) - {"resolution", "train_batch", "sample_batch"}):
            problems.append((f"{key}.{k}", "unknown key; accepted keys: resolution, sample_batch, train_batch"))
        values = {}
        for k, lo in (("resolution", 8), ("train_batch", 1), ("sample_batch", 1)):
            if k in item:
                values[k] = _int(item, k, key, lo, lo, problems)
            else:
                problems.append((f"{key}.{k}", "missing required key"))
        if len(values) == 3:
            out.append(BenchSize(**values))
    return tuple(out)


def _sampling(raw: Any, problems: list) -> tuple[SampleSetting, ...]:
    if not isinstance(raw, list):
        problems.append(("bench.sampling", f"got {raw!r}; expected a list of {{name, num_steps, cfg_scale, "
                                           "guidance_interval}} (may be empty)"))
        return ()
    out, names = [], set()
    for i, item in enumerate(raw):
        key = f"bench.sampling[{i}]"
        if not isinstance(item, Mapping):
            problems.append((key, f"got {item!r}; expected a mapping"))
            continue
        for k in sorted(set(item) - {"name", "num_steps", "cfg_scale", "guidance_interval"}):
            problems.append((f"{key}.{k}", "unknown key; accepted keys: cfg_scale, guidance_interval, name, num_steps"))
        name = item.get("name")
        if not isinstance(name, str) or not name or "." in name or name in names:
            problems.append((f"{key}.name", f"got {name!r}; expected a unique non-empty name without dots"))
        names.add(name)
        steps = _int(item, "num_steps", key, 1, 1, problems) if "num_steps" in item else None
        if steps is None:
            problems.append((f"{key}.num_steps", "missing required key"))
        cfg = item.get("cfg_scale", 1.0)
        if not _is_num(cfg) or cfg < 0:
            problems.append((f"{key}.cfg_scale", f"got {cfg!r}; expected a number >= 0"))
        gi = item.get("guidance_interval", [0.0, 1.0])
        if not (isinstance(gi, list) and len(gi) == 2 and all(_is_num(v) for v in gi) and 0 <= gi[0] < gi[1] <= 1):
            problems.append((f"{key}.guidance_interval", f"got {gi!r}; expected [lo, hi] with 0 <= lo < hi <= 1"))
            gi = [0.0, 1.0]
        out.append(SampleSetting(str(name), steps or 1, float(cfg) if _is_num(cfg) else 1.0,
                                 (float(gi[0]), float(gi[1]))))
    return tuple(out)


def parse_bench(raw: Any, model_keys: list[str] | tuple[str, ...]) -> BenchParams:
    """Validate the `bench:` mapping; `model_keys` are the keys of params `models` the entries may name."""
    problems: list[tuple[str, str]] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError([("bench", f"expected a mapping, got {type(raw).__name__}")])
    for k in sorted(set(raw) - _KEYS):
        problems.append((f"bench.{k}", f"unknown key; accepted keys: {', '.join(sorted(_KEYS))}"))
    d = BenchParams()
    models = raw.get("models", list(d.models))
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        problems.append(("bench.models", f"got {models!r}; expected a non-empty list of keys of `models`"))
        models = []
    for m in models:
        if m not in model_keys:
            problems.append(("bench.models", f"{m!r} is not a key of `models`; defined: {', '.join(model_keys)}"))
    if len(set(models)) != len(models):
        problems.append(("bench.models", f"got {models!r}; entries must be unique"))
    sizes = _sizes(raw["sizes"], problems) if "sizes" in raw else d.sizes
    sampling = _sampling(raw["sampling"], problems) if "sampling" in raw else d.sampling
    precision = raw.get("precision", d.precision)
    if precision not in PRECISIONS:
        problems.append(("bench.precision", f"got {precision!r}; accepted values: {', '.join(PRECISIONS)}"))
    compile_ = raw.get("compile", list(d.compile))
    if not (isinstance(compile_, list) and compile_ and all(isinstance(c, bool) for c in compile_)
            and len(set(compile_)) == len(compile_)):
        problems.append(("bench.compile", f"got {compile_!r}; expected a list of distinct booleans, e.g. [false] "
                                          "or [false, true]"))
        compile_ = [False]
    repa = raw.get("repa_encoder", d.repa_encoder)
    if repa not in REPA_ENCODERS:
        problems.append(("bench.repa_encoder", f"got {repa!r}; accepted values: {', '.join(REPA_ENCODERS)}"))
    interval = raw.get("nvml_interval_s", d.nvml_interval_s)
    if not _is_num(interval) or not 0.001 <= interval <= 10:
        problems.append(("bench.nvml_interval_s", f"got {interval!r}; expected a number in [0.001, 10]"))
    peak = raw.get("peak_tflops", d.peak_tflops)
    if not _is_num(peak) or peak < 0:
        problems.append(("bench.peak_tflops", f"got {peak!r}; expected a number >= 0 (0: documented peak)"))
    source = raw.get("peak_source", d.peak_source)
    if not isinstance(source, str) or (_is_num(peak) and peak > 0 and not source):
        problems.append(("bench.peak_source", "a peak_tflops override needs a peak_source saying where it comes from"))
    params = BenchParams(
        models=tuple(models), sizes=sizes, precision=precision, compile=tuple(compile_),
        warmup=_int(raw, "warmup", "bench", 0, d.warmup, problems),
        repeats=_int(raw, "repeats", "bench", 1, d.repeats, problems),
        sampling=sampling, sample_repeats=_int(raw, "sample_repeats", "bench", 1, d.sample_repeats, problems),
        sample_timed_steps=_int(raw, "sample_timed_steps", "bench", 0, d.sample_timed_steps, problems),
        repa_encoder=repa, nvml_interval_s=float(interval) if _is_num(interval) else d.nvml_interval_s,
        peak_tflops=float(peak) if _is_num(peak) else 0.0, peak_source=source if isinstance(source, str) else "")
    if problems:
        raise ConfigError(problems)
    return params


def paper_gpu_profile() -> BenchParams:
    """The recorded GPU benchmark: DeCo-XL vs Baseline-XL at 256 and 512 (docs/paper.md §1, Table 2 settings).

    Train batches are the official per-GPU micro-batches (32 at 256: 256 on 8 GPUs; 16 at 512: 256 on 8 GPUs with
    grad_accum 2). Sampling: the paper's 100 Euler steps with CFG 3.2 on [0.1, 1] (100x2; Baseline_DiT_XL.yaml,
    DeCo_XL.yaml) and the ablations' 50 steps without CFG, each timed over 10 steps and extrapolated to the full
    trajectory (guided and unguided steps timed separately), at batch 1 and at a throughput batch.
    """
    return BenchParams(
        models=("deco", "baseline"),
        sizes=(BenchSize(256, 32, 64), BenchSize(512, 16, 32)),
        precision="bf16", compile=(False,), warmup=3, repeats=7,
        sampling=(SampleSetting("euler100_cfg", 100, 3.2, (0.1, 1.0)), SampleSetting("euler50", 50, 1.0)),
        sample_repeats=5, sample_timed_steps=10, repa_encoder="dinov2-b14", nvml_interval_s=0.05)


__all__ = ["BenchParams", "BenchSize", "SampleSetting", "parse_bench", "paper_gpu_profile"]
