"""The benchmark: for each size x compile mode x model, time one training step and the Euler sampler, with peak
memory, NVML telemetry, FLOPs and MFU; then the DeCo/baseline ratios measured in the same run.

Compile modes are train.compile's (training/compile.py), measured side by side in one run: `none` (case
"<res>px/eager"), `blocks` and `full`. The train step is the loop's own under that mode; the time of its first
call less the steady-state median is reported as `compile_s`. Sampling in a compiled case uses the model
compiled the same way (its blocks, or the whole forward) and, on CUDA, replays each Euler step from a CUDA graph
(diffusion/graphs.py); the eager case samples eagerly, as the recordings before compile modes did.

One training step is what training/loop.py does per step: draw t, noise and label dropout; forward under bf16
autocast (CUDA) with the REPA projector hook; FM + FreqFM + REPA losses; backward; AdamW; float32 EMA update.
Data is a fixed synthetic batch (loading is not what we measure). The REPA encoder has random weights: only its
cost matters here, so the paper-size run needs no DINOv2 download.

Sampling uses deco_bench.diffusion.sampler.euler_sample as generation does (EMA-like float32 weights, bf16
autocast on CUDA; the unconditional half only where guidance is active). With `sample_timed_steps = k`, a k-step
unguided run and a k-step guided run give the cost of one unguided and one guided step, and the N-step time is
extrapolated as n_guided * guided + n_unguided * unguided (the JSON says so and gives k).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from deco_bench.bench import flops as flopsmod
from deco_bench.bench.memory import PeakMemory
from deco_bench.bench.nvml import NvmlSampler, open_device
from deco_bench.bench.timing import TimingStats, rate_spread, spread, synchronize, time_fn
from deco_bench.config import BenchParams, BenchSize, SampleSetting
from deco_bench.diffusion import encoders, path
from deco_bench.diffusion.graphs import StepGraphs
from deco_bench.diffusion.losses import LossWeights, RepaProjector
from deco_bench.diffusion.sampler import euler_sample, sampling_times
from deco_bench.models import build_model, count_parameters
from deco_bench.training import compile as compilemod
from deco_bench.training.ema import EMA
from deco_bench.training.step import DenoiserWithProjector, adamw, autocast, autocast_dtype, drop_labels, step_losses  # noqa: F401

NO_CUDA = "not measured: no CUDA device (CPU run)"


@dataclass(frozen=True)
class Recipe:
    """The losses and optimiser of one model's training step (from its params `models` entry and `train`)."""
    freqfm_weight: float = 1.0
    freqfm_quality: int = 85
    freqfm_gamma: float = 1.0
    repa_weight: float = 0.5
    repa_align_layer: int = 8
    repa_encoder: str = "small"  # small | dinov2-b14 | none
    null_condition_p: float = 0.1
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    ema_decay: float = 0.9999


@dataclass(frozen=True)
class ModelSpec:
    name: str
    label: str
    preset: str
    cfg: object  # deco_bench.models.ModelConfig
    recipe: Recipe


# ------------------------------------------------------------------------------------------------ precision

# ------------------------------------------------------------------------------------------------ train step

def _encoder(recipe: Recipe, cfg, resolution: int):
    if recipe.repa_weight <= 0 or recipe.repa_encoder == "none":
        return None
    if recipe.repa_encoder == "dinov2-b14":
        vit = encoders.DinoV2Encoder.build_vit(resolution, cfg.patch_size)
        return encoders.DinoV2Encoder(vit, resolution, cfg.patch_size)
    return encoders.build_encoder("small", patch_size=cfg.patch_size, seed=0)


def build_train_step(cfg, recipe: Recipe, *, batch: int, resolution: int, device: torch.device,
                     dtype: torch.dtype | None, compile: str | bool, seed: int = 0,
                     transform: Callable[[torch.nn.Module], object] | None = None,
                     activation_checkpointing: bool = False) -> Callable[[], None]:
    """A closure doing one full optimisation step on a fixed synthetic batch (see the module docstring).

    `compile` is a train.compile mode (False / True: 'none' / 'full'). `transform(net)`, if given, changes the
    trained network in place after its EMA copy is taken (e.g. compiling its blocks: tools.breakdown)."""

    torch.manual_seed(seed)
    net = build_model(cfg).to(device)
    encoder = _encoder(recipe, cfg, resolution)
    projector = None
    if encoder is not None:
        encoder = encoder.to(device).eval().requires_grad_(False)
        projector = RepaProjector(net.hidden_size, net.hidden_size, encoder.out_dim)
    module = DenoiserWithProjector(net, projector, recipe.repa_align_layer).to(device)
    ema = EMA(net, recipe.ema_decay)
    if transform is not None:
        transform(net)
    opt = adamw(module.parameters(), lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay, device=device)
    mode = {False: "none", True: "full"}.get(compile, compile)
    objective = compilemod.prepare(net, module, mode=mode, activation_checkpointing=activation_checkpointing,
                                   input_shape=(cfg.in_channels, resolution, resolution))
    weights = LossWeights(freqfm=recipe.freqfm_weight, repa=recipe.repa_weight if encoder is not None else 0.0,
                          freq_quality=recipe.freqfm_quality, freq_gamma=recipe.freqfm_gamma)
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.rand(batch, cfg.in_channels, resolution, resolution, generator=g, device=device) * 2 - 1
    raw = (x + 1) / 2
    labels = torch.randint(0, cfg.num_classes, (batch,), generator=g, device=device)

    def step() -> None:
        t = path.sample_t(batch, generator=g, lognorm=True, device=device)
        eps = torch.randn(x.shape, generator=g, device=device)
        keep = torch.rand(batch, generator=g, device=device) >= recipe.null_condition_p
        y = drop_labels(labels, keep, cfg.num_classes)
        with autocast(device, dtype):
            loss = objective(module, encoder, x, y, raw, t, eps, weights)["loss"]
        loss.backward()
        opt.step()
        ema.update(net)
        opt.zero_grad(set_to_none=True)

    return step


# ------------------------------------------------------------------------------------------------- sampling

def guided_step_count(setting: SampleSetting) -> int:
    """Steps of an N-step Euler run where the sampler evaluates the unconditional half (its own interval test)."""

    if setting.cfg_scale == 1.0:
        return 0
    lo, hi = setting.guidance_interval
    t = sampling_times(setting.num_steps)[:-1]
    return int(((t > lo) & (t <= hi)).sum())


def build_sampler_run(net, cfg, *, num_steps: int, cfg_scale: float, guidance_interval: tuple[float, float],
                      batch: int, resolution: int, device: torch.device, dtype: torch.dtype | None, seed: int = 0,
                      graphs: StepGraphs | None = None):
    """A closure sampling one batch (noise fixed at build time; labels i mod num_classes; null class = num_classes),
    with euler_sample, or through `graphs` (CUDA graphs of the same steps) when given."""

    g = torch.Generator(device=device).manual_seed(seed)
    noise = torch.randn(batch, cfg.in_channels, resolution, resolution, generator=g, device=device)
    labels = torch.arange(batch, device=device) % cfg.num_classes

    def run() -> None:
        kwargs = dict(num_steps=num_steps, cfg_scale=cfg_scale, guidance_interval=guidance_interval,
                      null_label=cfg.num_classes)
        with autocast(device, dtype):
            if graphs is None:
                euler_sample(net, noise, labels, **kwargs)
            else:
                graphs.sample("euler", noise, labels, **kwargs)

    return run


# ------------------------------------------------------------------------------------------------ one phase

class Telemetry:
    """NVML for one device (or the reason it is unavailable), shared by all phases."""

    def __init__(self, device: torch.device, interval_s: float, opener=open_device):
        self.interval_s = interval_s
        self.dev, self.reason = (None, NO_CUDA) if device.type != "cuda" else opener(
            device.index if device.index is not None else torch.cuda.current_device())

    def sampler(self) -> NvmlSampler | None:
        if self.dev is None:
            return None
        return NvmlSampler(self.dev.read, self.dev.energy_mj, self.interval_s)

    def info(self) -> dict | None:
        return self.dev.info() if self.dev is not None else None


def measure(fn: Callable[[], None], *, warmup: int, repeats: int, device: torch.device, telemetry: Telemetry,
            items_per_call: int) -> tuple[TimingStats, dict, dict | None]:
    """Time fn with fresh memory peaks and NVML sampling on the measured repeats only."""
    sampler = telemetry.sampler()
    with PeakMemory(device) as mem:
        stats = time_fn(fn, warmup=warmup, repeats=repeats, device=device,
                        before_measure=sampler.start if sampler is not None else None)
    nvml = sampler.stop(images=items_per_call * repeats) if sampler is not None else None
    return stats, mem.result, nvml


def _nvml_fields(nvml: dict | None, telemetry: Telemetry) -> dict:
    return {"nvml": nvml, "nvml_reason": None if nvml is not None else telemetry.reason}


def _mfu(flops_per_item: int, items_per_s: float, peak: dict) -> dict:
    if peak.get("flops_per_s") is None:
        return {"mfu": None, "mfu_reason": peak["reason"]}
    return {"mfu": flopsmod.mfu(flops_per_item, items_per_s, peak["flops_per_s"]), "mfu_reason": None}


def bench_train(spec: ModelSpec, size: BenchSize, bp: BenchParams, device, dtype, compile: str,
                telemetry: Telemetry, flops_train: int, peak: dict) -> dict:
    """The train step under compile mode `compile`; the first of the `warmup` calls is timed on its own (for a
    compiled mode it includes the compilation)."""
    step = build_train_step(spec.cfg, spec.recipe, batch=size.train_batch, resolution=size.resolution,
                            device=device, dtype=dtype, compile=compile)
    t0 = time.perf_counter()
    step()
    synchronize(device)
    first_s = time.perf_counter() - t0
    stats, mem, nvml = measure(step, warmup=max(bp.warmup - 1, 0), repeats=bp.repeats, device=device,
                               telemetry=telemetry, items_per_call=size.train_batch)
    ips = rate_spread(stats, size.train_batch)
    return {"batch": size.train_batch, "s_per_iter": spread(stats.times_s), "images_per_s": ips,
            "repeats": stats.repeats, "warmup": stats.warmup + 1, "timer": stats.timer, "times_s": list(stats.times_s),
            "first_step_s": first_s, "compile_s": None if compile == "none" else max(first_s - stats.median_s, 0.0),
            "memory": mem, **_nvml_fields(nvml, telemetry), **_mfu(flops_train, ips["median"], peak)}


def _per_step(cache: dict, kind: str, net, cfg, k: int, cfg_scale: float, common: dict, warmup: int,
              bp: BenchParams, device, telemetry, unguided: tuple | None = None):
    """Seconds per unguided (or guided) Euler step at one batch, from k-step runs; cached per (kind, batch) so
    that several settings of one model share the measurement (guided cost does not depend on the CFG scale)."""
    key = (kind, common["batch"])
    if key not in cache:
        run = build_sampler_run(net, cfg, num_steps=k, cfg_scale=cfg_scale, guidance_interval=(0.0, 1.0), **common)
        stats, mem, nvml = measure(run, warmup=warmup, repeats=bp.sample_repeats, device=device,
                                   telemetry=telemetry, items_per_call=0)
        e_call = nvml["energy_j"] / bp.sample_repeats if nvml and nvml.get("energy_j") is not None else None
        if kind == "unguided":
            per = [t / k for t in stats.times_s]
            e_step = e_call / k if e_call is not None else None
        else:  # a k-step run guided on (0, 1]: step 0 (t = 0) is unguided, the other k - 1 are guided
            per = [(t - u) / (k - 1) for t, u in zip(stats.times_s, unguided[0])]
            e_step = (e_call - unguided[3]) / (k - 1) if e_call is not None and unguided[3] is not None else None
        cache[key] = (per, mem, nvml, e_step)
    return cache[key]


def bench_sample(net, cfg, setting: SampleSetting, batch: int, size: BenchSize, bp: BenchParams, device, dtype,
                 telemetry: Telemetry, flops_fwd: int, peak: dict, cache: dict | None = None,
                 graphs: StepGraphs | None = None) -> dict:
    n, k = setting.num_steps, bp.sample_timed_steps
    cache = {} if cache is None else cache
    n_guided = guided_step_count(setting)
    common = dict(batch=batch, resolution=size.resolution, device=device, dtype=dtype, graphs=graphs)
    warmup = min(bp.warmup, 1)  # a sampling run is many model calls: one untimed run warms every kernel
    nfe = 2 * n_guided + (n - n_guided)  # model evaluations per image (a guided step evaluates 2 rows)
    out: dict = {"batch": batch, "num_steps": n, "cfg_scale": setting.cfg_scale,
                 "guidance_interval": list(setting.guidance_interval), "guided_steps": n_guided,
                 "nfe_per_image": nfe}
    if k == 0 or k >= n:
        run = build_sampler_run(net, cfg, num_steps=n, cfg_scale=setting.cfg_scale,
                                guidance_interval=setting.guidance_interval, **common)
        stats, mem, nvml = measure(run, warmup=warmup, repeats=bp.sample_repeats, device=device,
                                   telemetry=telemetry, items_per_call=batch)
        totals = list(stats.times_s)
        out["extrapolated"] = None
        out["timer"] = stats.timer
    else:
        if k < 2:
            raise ValueError("bench.sample_timed_steps must be 0 or >= 2 (a guided k-step run has k - 1 guided steps)")
        unguided = _per_step(cache, "unguided", net, cfg, k, 1.0, common, warmup, bp, device, telemetry)
        per_u, mem, nvml, e_u = unguided
        per_g, e_g = [None] * len(per_u), None
        if n_guided:
            mem_u = mem
            per_g, mem, nvml, e_g = _per_step(cache, "guided", net, cfg, k, setting.cfg_scale, common, warmup, bp,
                                              device, telemetry, unguided)
            mem = {key: max(v, mem_u[key]) if isinstance(v, int) and isinstance(mem_u[key], int) else v
                   for key, v in mem.items()}  # the peak over both runs
        totals = [n_guided * (g or 0.0) + (n - n_guided) * u for g, u in zip(per_g, per_u)]
        out["extrapolated"] = {
            "timed_steps": k, "note": f"time of {n} steps extrapolated from {k}-step runs: n_guided x (guided step) "
                                      f"+ n_unguided x (unguided step), each step's cost from its own k-step run",
            "s_per_unguided_step": statistics.median(per_u),
            "s_per_guided_step": statistics.median(per_g) if n_guided else None}
        out["timer"] = "cuda_events" if device.type == "cuda" else "perf_counter"
        if nvml is not None:  # energy extrapolated like the time, from the energy counter of the partial runs
            if e_u is not None and (e_g is not None or not n_guided):
                nvml = {**nvml, "energy_j_per_image": (n_guided * (e_g or 0.0) + (n - n_guided) * e_u) / batch,
                        "energy_reason": "extrapolated like the time: energy per guided/unguided step x steps"}
            else:
                nvml = {**nvml, "energy_j_per_image": None,
                        "energy_reason": nvml.get("energy_reason") or "energy counter unavailable"}
    per_batch = spread(totals)
    ips = rate_spread(per_batch, batch)
    out.update(s_per_image=spread([t / batch for t in totals]), images_per_s=ips, s_per_batch=per_batch,
               repeats=len(totals), memory=mem, **_nvml_fields(nvml, telemetry),
               **_mfu(flops_fwd * nfe, ips["median"], peak))
    if graphs is not None:
        out.update(cuda_graphs=graphs.captured, cuda_graphs_reason=graphs.fallback_reason)
    return out


# ---------------------------------------------------------------------------------------------- whole bench

def _guard(fn: Callable[[], dict], compile: bool) -> dict:
    """Run one measurement; out-of-memory (and, under torch.compile, any backend failure) becomes a recorded
    error instead of ending the benchmark."""
    try:
        return fn()
    except torch.cuda.OutOfMemoryError as e:
        torch.cuda.empty_cache()
        return {"error": f"out of memory: {str(e).splitlines()[0]}"}
    except Exception as e:  # noqa: BLE001 - only swallowed for compiled runs, re-raised otherwise
        if not compile:
            raise
        return {"error": f"torch.compile failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}


def resolve_peak(bp: BenchParams, device: torch.device, dtype: torch.dtype | None,
                 nvml_info: dict | None = None) -> dict:
    """The peak MFU is stated against: bench.peak_tflops, or the documented one of the GPU present (told apart
    from boards of the same name by the maximum power limit in `nvml_info`, NvmlDevice.info())."""
    if dtype is not torch.bfloat16:
        return {"flops_per_s": None, "dtype": "bf16", "source": None,
                "reason": "not measured: MFU is stated against a bf16 peak and this run is float32"}
    if bp.peak_tflops > 0:
        return {"flops_per_s": bp.peak_tflops * 1e12, "dtype": "bf16", "source": bp.peak_source, "reason": None}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    max_power_w = (nvml_info or {}).get("power_max_limit_w")
    value, text = flopsmod.documented_peak(name, max_power_w)
    board = {"device_name": name, "power_max_limit_w": max_power_w}
    if value is None:
        return {"flops_per_s": None, "dtype": "bf16", "source": None, "reason": text, **board}
    return {"flops_per_s": value, "dtype": "bf16", "source": text, "reason": None, **board}


def ratio_table(models: dict[str, dict], reference: str) -> dict:
    """<model>/<reference> for the comparable metrics of a case (time and memory: < 1 means smaller)."""
    ref = models.get(reference)
    out: dict = {}
    if ref is None or "error" in ref:
        return out

    def get(d: dict, path: str):
        for part in path.split("."):
            if not isinstance(d, dict) or part not in d:
                return None
            d = d[part]
        return d

    paths = ["params", "flops_per_image_fwd", "train.s_per_iter.median", "train.images_per_s.median",
             "train.memory.cuda_peak_allocated_bytes", "train.memory.host_rss_peak_bytes"]
    for sname, batches in (ref.get("sample") or {}).items():
        for b in batches:
            paths += [f"sample.{sname}.{b}.s_per_image.median", f"sample.{sname}.{b}.images_per_s.median",
                      f"sample.{sname}.{b}.memory.cuda_peak_allocated_bytes"]
    for name, m in models.items():
        if name == reference or "error" in m:
            continue
        r = {}
        for p in paths:
            a, b = get(m, p), get(ref, p)
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
                r[p] = a / b
        out[f"{name}/{reference}"] = r
    return out


def run_benchmark(specs: list[ModelSpec], bp: BenchParams, device: torch.device,
                  progress: Callable[[str], None] | None = None, telemetry: Telemetry | None = None) -> dict:
    """All measurements; returns the result body (the stage adds `env` and writes it)."""

    say = progress or (lambda _msg: None)
    dtype = autocast_dtype(bp.precision, device)
    telemetry = telemetry or Telemetry(device, bp.nvml_interval_s)
    peak = resolve_peak(bp, device, dtype, telemetry.info())
    reference = "baseline" if any(s.name == "baseline" for s in specs) else specs[-1].name
    cases: dict = {}
    for size in bp.sizes:
        counted = {s.name: (flopsmod.forward_flops_per_image(s.cfg, size.resolution),
                            flopsmod.train_flops_per_image(s.cfg, size.resolution)) for s in specs}
        for mode in bp.compile:
            compiled = mode != "none"
            case_id = f"{size.resolution}px/{mode if compiled else 'eager'}"
            models: dict = {}
            for s in specs:
                f_fwd, f_train = counted[s.name]
                entry: dict = {"label": s.label, "preset": s.preset, "kind": s.cfg.kind,
                               "model_config": asdict(s.cfg), "recipe": asdict(s.recipe),
                               "flops_per_image_fwd": f_fwd, "flops_per_image_train": f_train,
                               "flops_note": "FlopCounterMode, 2 FLOPs per multiply-add, denoiser only"}
                say(f"{case_id} {s.name}: train step x{bp.repeats} at batch {size.train_batch}")
                entry["train"] = _guard(lambda: bench_train(s, size, bp, device, dtype, mode, telemetry, f_train,
                                                            peak), compiled)
                torch.manual_seed(0)
                net = build_model(s.cfg).to(device).eval()
                entry["params"] = count_parameters(net)
                if mode == "blocks":
                    compilemod.compile_regions(net)
                model = torch.compile(net, backend=compilemod.BACKEND) if mode == "full" else net
                graphs = StepGraphs(model) if compiled else None
                sample: dict = {}
                step_cache: dict = {}
                for setting in bp.sampling:
                    sample[setting.name] = {}
                    for batch in sorted({1, size.sample_batch}):
                        say(f"{case_id} {s.name}: sampling {setting.name} at batch {batch}")
                        sample[setting.name][f"batch_{batch}"] = _guard(
                            lambda m=model, gr=graphs: bench_sample(m, s.cfg, setting, batch, size, bp, device, dtype,
                                                                    telemetry, f_fwd, peak, step_cache, gr), compiled)
                entry["sample"] = sample
                models[s.name] = entry
                del net, model, graphs
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            cases[case_id] = {"resolution": size.resolution, "compile": mode, "train_batch": size.train_batch,
                              "sample_batch": size.sample_batch, "models": models,
                              "ratios": ratio_table(models, reference)}
    return {"cases": cases, "peak": peak, "reference_model": reference, "nvml_device": telemetry.info(),
            "nvml_reason": telemetry.reason}


__all__ = ["Recipe", "ModelSpec", "autocast_dtype", "build_train_step", "build_sampler_run", "guided_step_count",
           "bench_train", "bench_sample", "run_benchmark", "ratio_table", "resolve_peak", "Telemetry", "measure"]
