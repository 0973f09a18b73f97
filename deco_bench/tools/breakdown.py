"""Where the time of one training step goes: a kernel breakdown of the bench's train step, and the same step with
every transformer block compiled (regional torch.compile).

The step is the bench's (runner.build_train_step: t, noise and label dropout; bf16 autocast on CUDA; FM + FreqFM +
REPA; backward; AdamW; float32 EMA) with the models' official recipes (bench.params.paper_specs). torch.profiler
records the GPU kernels of a few steps; each kernel is put in a category by its name (GEMM, attention, optimiser,
reduction, elementwise and copies, fused Triton kernels, other), and the kernel time per step is set against the
wall time per step: a GPU busy for much less than the wall time is waiting for the CPU to launch work.

`--compile-blocks` times the step again with each DiT block (and each pixel-decoder block) compiled on its own
(`torch.compile` of the block's forward: the blocks of a model share one compiled graph), which fuses the
elementwise work between the GEMMs; the whole-model compile of `train.compile` takes minutes at XL size.

    python -m deco_bench.tools.breakdown --presets deco-xl,baseline-xl --resolution 256 --batch 32 \\
        --compile-blocks --out bench/recordings/checks/h200-DATE-breakdown.json

Without --presets it measures the paper's pair (deco-xl,baseline-xl; 256 px, batch 32 unless given) on a GPU and
the embedded pair (deco-s,baseline-s; 32 px, batch 8 unless given) on CPU, saying so. Before building a model it
estimates the step's memory (bench.memory_need) and refuses to start, in one line with exit status 2, when the
device has less available.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from deco_bench.bench import env as envmod
from deco_bench.bench import flops as flopsmod
from deco_bench.bench import memory_need
from deco_bench.bench.params import paper_specs
from deco_bench.bench.runner import ModelSpec, Recipe, autocast_dtype, build_train_step
from deco_bench.bench.timing import spread, synchronize, time_fn
from deco_bench.io import atomic_write_json
from deco_bench.models import get_preset
from deco_bench.models.deco import DecoderBlock
from deco_bench.models.layers import DiTBlock

SCHEMA = "deco-bench/step-breakdown/1"
# (category, substrings of the kernel name), first match wins; names are lower-cased before matching.
CATEGORIES = (
    ("attention", ("flash", "fmha", "attention", "attn")),
    ("fused (triton)", ("triton",)),
    ("gemm", ("gemm", "xmma", "cutlass", "nvjet", "cublas", "gemv", "aten::mm", "aten::addmm", "aten::bmm")),
    ("optimizer", ("multi_tensor", "foreach", "adam")),
    ("reduction", ("reduce", "norm")),
    ("elementwise and copies", ("elementwise", "vectorized", "unrolled", "copy", "cat", "fill", "index",
                                "where", "aten::")),
)


def category(name: str) -> str:
    low = name.lower()
    return next((cat for cat, keys in CATEGORIES if any(k in low for k in keys)), "other")


def kernel_table(prof, device: torch.device, steps: int) -> list[dict]:
    """Per kernel (CUDA) or per operator (CPU): calls and self time per step, largest first."""

    # record_function ranges (e.g. "Optimizer.step#AdamW.step") also appear on the GPU timeline, spanning the
    # kernels launched inside them: counting them would count those kernels twice
    annotations = {e.name for e in prof.events() if getattr(e, "is_user_annotation", False)}
    rows = []
    for avg in prof.key_averages():
        if avg.key in annotations or avg.key.startswith("ProfilerStep"):
            continue
        if device.type == "cuda":
            if avg.device_type != DeviceType.CUDA:
                continue
            us = avg.self_device_time_total
        else:
            us = avg.self_cpu_time_total
        if us > 0:
            rows.append({"name": avg.key, "category": category(avg.key), "calls_per_step": avg.count / steps,
                         "ms_per_step": us / 1e3 / steps})
    return sorted(rows, key=lambda r: -r["ms_per_step"])


def summarise(rows: list[dict], wall_ms: float, top: int = 15) -> dict:
    busy = sum(r["ms_per_step"] for r in rows)
    cats: dict[str, dict] = {}
    for r in rows:
        c = cats.setdefault(r["category"], {"ms_per_step": 0.0, "kernels": 0})
        c["ms_per_step"] += r["ms_per_step"]
        c["kernels"] += 1
    for c in cats.values():
        c["share_of_busy"] = c["ms_per_step"] / busy if busy else None
    return {"busy_ms_per_step": busy, "wall_ms_per_step": wall_ms,
            "busy_fraction": busy / wall_ms if wall_ms else None,
            "launches_per_step": sum(r["calls_per_step"] for r in rows),
            "categories": dict(sorted(cats.items(), key=lambda kv: -kv[1]["ms_per_step"])), "top": rows[:top]}


def compile_blocks(net: torch.nn.Module) -> int:
    """Compile the forward of every DiT and pixel-decoder block in place; returns how many."""

    n = 0
    for m in net.modules():
        if isinstance(m, (DiTBlock, DecoderBlock)):
            m.forward = torch.compile(m.forward)
            n += 1
    return n


def timed(step: Callable[[], None], *, warmup: int, repeats: int, device: torch.device) -> dict:
    t0 = time.perf_counter()
    stats = time_fn(step, warmup=warmup, repeats=repeats, device=device)
    return {"s_per_iter": spread(stats.times_s), "timer": stats.timer, "repeats": repeats, "warmup": warmup,
            "wall_s_including_warmup": time.perf_counter() - t0}


def measure_model(spec, *, resolution: int, batch: int, device: torch.device, dtype, warmup: int, repeats: int,
                  profile_steps: int, compile: bool, peak: float | None, say: Callable[[str], None]) -> dict:


    flops = flopsmod.train_flops_per_image(spec.cfg, resolution)

    def mfu(t: dict) -> float | None:
        return flopsmod.mfu(flops, batch / t["s_per_iter"]["median"], peak) if peak else None

    out: dict = {"label": spec.label, "preset": spec.preset, "flops_per_image_train": flops}
    say(f"{spec.name}: eager train step at batch {batch}, {resolution} px")
    step = build_train_step(spec.cfg, spec.recipe, batch=batch, resolution=resolution, device=device, dtype=dtype,
                            compile=False)
    eager = timed(step, warmup=warmup, repeats=repeats, device=device)
    eager["mfu"] = mfu(eager)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    synchronize(device)
    with profile(activities=acts) as prof:
        for _ in range(profile_steps):
            step()
        synchronize(device)
    eager["breakdown"] = summarise(kernel_table(prof, device, profile_steps), eager["s_per_iter"]["median"] * 1e3)
    out["eager"] = eager
    del step, prof
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if compile:
        say(f"{spec.name}: the same step with each block compiled")
        torch.manual_seed(0)
        try:
            step = build_train_step(spec.cfg, spec.recipe, batch=batch, resolution=resolution, device=device,
                                    dtype=dtype, compile=False, transform=compile_blocks)
            t0 = time.perf_counter()
            step()  # compiles
            synchronize(device)
            first = time.perf_counter() - t0
            comp = timed(step, warmup=max(warmup - 1, 1), repeats=repeats, device=device)
            comp.update(mfu=mfu(comp), first_step_s=first,
                        speedup_vs_eager=eager["s_per_iter"]["median"] / comp["s_per_iter"]["median"])
            out["compiled_blocks"] = comp
        except Exception as e:  # noqa: BLE001 - a compiler failure is a result to record, not a crash
            out["compiled_blocks"] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


# (presets, resolution, batch) when not given: the paper's pair and official per-GPU batch on a GPU; on CPU the
# embedded pair, which a CPU machine can hold (one XL step at 256 px, batch 32 needs about 55 GB in float32).
DEFAULTS = {"cuda": ("deco-xl,baseline-xl", 256, 32), "cpu": ("deco-s,baseline-s", 32, 8)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default=None,
                    help="comma-separated, from deco-xl, baseline-xl (the official recipes); or any preset name, "
                         "which gets DeCo's recipe with a small REPA encoder (CPU checks). Default: "
                         f"{DEFAULTS['cuda'][0]} on a GPU, {DEFAULTS['cpu'][0]} on CPU")
    ap.add_argument("--resolution", type=int, default=None,
                    help=f"default {DEFAULTS['cuda'][1]}; {DEFAULTS['cpu'][1]} on CPU without --presets")
    ap.add_argument("--batch", type=int, default=None, help="per-device train batch (official: 32 at 256 px); "
                                                            f"default {DEFAULTS['cuda'][2]}; {DEFAULTS['cpu'][2]} "
                                                            "on CPU without --presets")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--profile-steps", type=int, default=3)
    ap.add_argument("--compile-blocks", action="store_true", help="also time the step with each block compiled")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)



    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    dtype = autocast_dtype("auto", device)
    say = lambda m: print(f"breakdown: {m}", file=sys.stderr, flush=True)  # noqa: E731
    # the CPU defaults only when the presets are defaulted too: --presets deco-xl alone means the paper's sizes
    defaults = DEFAULTS["cpu" if args.presets is None and device.type == "cpu" else "cuda"]
    if args.presets is None and device.type == "cpu":
        say(f"no CUDA device: measuring {defaults[0]} at {args.resolution or defaults[1]} px, batch "
            f"{args.batch or defaults[2]} (the paper's {DEFAULTS['cuda'][0]} need a GPU; --presets chooses)")
    args.presets = defaults[0] if args.presets is None else args.presets
    args.resolution = defaults[1] if args.resolution is None else args.resolution
    args.batch = defaults[2] if args.batch is None else args.batch
    official = {s.preset: s for s in paper_specs()}
    specs = []
    for preset in [p.strip() for p in args.presets.split(",") if p.strip()]:
        if preset in official:
            specs.append(official[preset])
        else:
            try:
                cfg = get_preset(preset)
            except ValueError as e:
                ap.error(str(e))
            specs.append(ModelSpec(preset, preset, preset, cfg, replace(Recipe(), repa_align_layer=min(2, cfg.depth))))
        if args.resolution % specs[-1].cfg.patch_size:
            ap.error(f"--resolution {args.resolution} is not a multiple of {preset}'s patch size "
                     f"{specs[-1].cfg.patch_size}")
    needs = {s.preset: memory_need.training_need(
                 s.cfg, batch=args.batch, resolution=args.resolution, bf16=dtype is torch.bfloat16,
                 encoder=s.recipe.repa_encoder if s.recipe.repa_weight > 0 else "none") for s in specs}
    refusal = memory_need.refusal("breakdown", needs, batch=args.batch, resolution=args.resolution, device=device,
                                  hint="pass a smaller --presets (e.g. deco-s,baseline-s), --batch or --resolution, "
                                       "or run on a GPU with more memory")
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    peak, peak_text = flopsmod.documented_peak(name) if dtype is torch.bfloat16 else (None, None)
    result: dict = {"schema": SCHEMA, "resolution": args.resolution, "batch": args.batch,
                    "peak_flops_per_s": peak, "peak_source": peak_text if peak else None,
                    "categories": {c: list(k) for c, k in CATEGORIES}, "models": {},
                    "env": envmod.fingerprint(device, dtype="bf16" if dtype is torch.bfloat16 else "float32",
                                              compile=[False, True] if args.compile_blocks else [False])}
    for spec in specs:
        result["models"][spec.name] = measure_model(
            spec, resolution=args.resolution, batch=args.batch, device=device, dtype=dtype, warmup=args.warmup,
            repeats=args.repeats, profile_steps=args.profile_steps, compile=args.compile_blocks, peak=peak, say=say)
        atomic_write_json(args.out, result)  # after each model: a later timeout keeps what was measured
    for m, r in result["models"].items():
        e = r["eager"]
        busy = "GPU busy" if device.type == "cuda" else "operator time / wall"
        line = (f"{m:12s} eager {e['s_per_iter']['median'] * 1e3:8.1f} ms/it, "
                f"{busy} {e['breakdown']['busy_fraction']:.2f}")
        c = r.get("compiled_blocks") or {}
        if "s_per_iter" in c:
            line += f"; blocks compiled {c['s_per_iter']['median'] * 1e3:8.1f} ms/it ({c['speedup_vs_eager']:.2f}x)"
        elif c:
            line += f"; blocks compiled: {c['error']}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
