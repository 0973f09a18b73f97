"""Our DeCo and baseline against the official implementation (github.com/Zehong-Ma/DeCo), same weights, same
machine, measured side by side.

The official model classes (`PixNerDiT`, `FlattenDiT`) and its Euler sampler need only torch, so they are
imported from a checkout given by `--official PATH` (or env DECO_OFFICIAL) and run -- nothing is copied. Each
official model is built with seeded, perturbed weights (its init zeroes the output layers), and ours gets the same
weights through deco_bench.models.official's key mapping; the differences of the outputs (forward and samples) are
recorded beside the timings (tests/benchmarks/test_vs_official.py asserts them on CPU).

Timed, in interleaved pairs (official, ours, official, ours, ...) so that drift of a shared machine hits both:
- train step: forward, MSE to a fixed target, backward, AdamW step (bf16 autocast on CUDA, as both trainers);
- sampler: a 10-step Euler run with guidance inactive (CFG 1.0: the official sampler still evaluates the
  unconditional half; ours skips it) and with CFG 3.2 on (0.1, 1] (the official XL configs).

    git clone https://github.com/Zehong-Ma/DeCo /path/to/DeCo && export DECO_OFFICIAL=/path/to/DeCo
    python -m deco_bench.tools.vs_official --out bench/vs_official.json
    python -m deco_bench.tools.vs_official --official /path/to/DeCo --device cuda --size xl --out X.json  # GPU

`--size xl` builds DeCo-XL and Baseline-XL from the checkout's configs_c2i and measures at 256 px with the
official per-GPU batch 32; on CUDA the forward parity is also taken under bf16 autocast. Before building the
models the memory of the pair is estimated (bench.memory_need): a device that cannot hold it is refused in one
line, exit status 2.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from deco_bench.bench import env as envmod
from deco_bench.bench import memory_need
from deco_bench.bench.timing import spread, synchronize
from deco_bench.diffusion.sampler import euler_sample
from deco_bench.io import atomic_write_json
from deco_bench.models import build_model
from deco_bench.models.official import config_from_official_init_args, official_denoiser, official_state_dict_to_ours
from deco_bench.training.step import autocast, autocast_dtype

# An embedded-size pair: the official constructor arguments of deco-s / baseline-s (32 px, patch 4, width 192).
OFFICIAL_ARGS = {
    "deco": dict(in_channels=3, num_groups=4, hidden_size=192, hidden_size_x=32, num_blocks=6, num_cond_blocks=4,
                 patch_size=4, num_classes=8),
    "baseline": dict(in_channels=3, num_groups=4, hidden_size=192, num_blocks=6, patch_size=4, num_classes=8),
}
SAMPLER_SETTINGS = {"cfg1.0": (1.0, (0.0, 1.0)), "cfg3.2_interval0.1": (3.2, (0.1, 1.0))}
# The paper-size pair: constructor arguments read from the checkout's own configs (model.denoiser.init_args).
OFFICIAL_XL_CONFIGS = {"deco": "configs_c2i/DeCo_XL.yaml", "baseline": "configs_c2i/Baseline_DiT_XL.yaml"}
# Measurement sizes: "s" is the CPU-sized pair above; "xl" the paper's models at 256 px with the official per-GPU
# train batch (256 over 8 GPUs) -- a GPU-only measurement (two XL models with AdamW and the activations of one
# step: about 48 GB under bf16 autocast, bench.memory_need).
SIZES = {"s": dict(resolution=32, batch=8, sample_batch=4, num_steps=10),
         "xl": dict(resolution=256, batch=32, sample_batch=8, num_steps=10)}


OFFICIAL_ENV = "DECO_OFFICIAL"  # path of a checkout of github.com/Zehong-Ma/DeCo
OFFICIAL_MARKER = Path("src/models/transformer/dit_c2i_DeCo.py")


def find_official(path: str | os.PathLike | None = None, *, flag: str | None = "--official PATH"
                  ) -> tuple[Path | None, str]:
    """(the official checkout, "") from `path`, else env DECO_OFFICIAL; (None, why not) when neither names one.
    `flag`: the option that could also name it, for the message (None: only the variable)."""
    given, how = (path, "--official") if path else (os.environ.get(OFFICIAL_ENV), OFFICIAL_ENV)
    if not given:
        return None, (f"no official DeCo checkout: {f'pass {flag} or ' if flag else ''}set {OFFICIAL_ENV}=PATH "
                      f"(a clone of github.com/Zehong-Ma/DeCo)")
    p = Path(given)
    if not (p / OFFICIAL_MARKER).is_file():
        return None, f"{how}={given} is not a DeCo checkout (no {OFFICIAL_MARKER} in it)"
    return p, ""


def official_repo(path: str | os.PathLike | None = None) -> Path | None:
    """The official checkout: `path`, else env DECO_OFFICIAL; None if neither names a checkout."""
    return find_official(path)[0]


def _import_official(repo: Path):
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from src.diffusion.base.guidance import simple_guidance_fn
    from src.diffusion.flow_matching.sampling import EulerSampler
    from src.diffusion.flow_matching.scheduling import LinearScheduler
    from src.models.transformer.dit_c2i_baseline import FlattenDiT
    from src.models.transformer.dit_c2i_DeCo import PixNerDiT

    return {"deco": PixNerDiT, "baseline": FlattenDiT, "EulerSampler": EulerSampler,
            "LinearScheduler": LinearScheduler, "guidance_fn": simple_guidance_fn}


def official_xl_args(repo: Path) -> dict[str, dict]:
    """{kind: init_args} of DeCo-XL and Baseline-XL, read from the checkout's configs_c2i YAML files."""

    return {kind: official_denoiser(repo / rel)[1] for kind, rel in OFFICIAL_XL_CONFIGS.items()}


def our_config(kind: str, a: dict):
    """Our ModelConfig for official constructor arguments (deco_bench.models.official's own mapping)."""

    class_path = {"deco": "dit_c2i_DeCo.PixNerDiT", "baseline": "dit_c2i_baseline.FlattenDiT"}[kind]
    return config_from_official_init_args(class_path, a, source=f"official {kind} arguments")


def build_pair(kind: str, repo: Path, args: dict | None = None, seed: int = 0):
    """(official model, our model) with identical weights, float32, on CPU, in train mode."""

    args = args or OFFICIAL_ARGS[kind]
    cls = _import_official(repo)[kind]
    torch.manual_seed(seed)
    official = cls(**args)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in official.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    ours = build_model(our_config(kind, args))
    ours.load_state_dict(official_state_dict_to_ours(official.state_dict(), kind, prefix=""), strict=True)
    return official, ours


def _autocast(device: torch.device):
    """bf16 autocast on CUDA, as both trainers run; float32 on CPU (training.step's rule for precision 'auto')."""
    return autocast(device, autocast_dtype("auto", device))


def train_step_fn(model, *, batch: int, resolution: int, num_classes: int, device: torch.device) -> Callable[[], None]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(batch, 3, resolution, resolution, generator=g).to(device)
    target = torch.randn(batch, 3, resolution, resolution, generator=g).to(device)
    t = torch.rand(batch, generator=g).to(device)
    y = torch.randint(0, num_classes, (batch,), generator=g).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        with _autocast(device):
            loss = (model(x, t, y).float() - target).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def sampler_fns(official, ours, repo: Path, *, cfg_scale: float, interval: tuple[float, float], num_steps: int,
                batch: int, resolution: int, num_classes: int, device: torch.device):
    """(official run, our run, parity {max_abs_diff, rel_err} of x_ours against x_official) for one Euler setting."""

    off = _import_official(repo)
    sampler = off["EulerSampler"](scheduler=off["LinearScheduler"](), guidance_fn=off["guidance_fn"],
                                  num_steps=num_steps, guidance=cfg_scale, guidance_interval_min=interval[0],
                                  guidance_interval_max=interval[1])
    g = torch.Generator().manual_seed(4)
    noise = torch.randn(batch, 3, resolution, resolution, generator=g).to(device)
    labels = (torch.arange(batch) % num_classes).to(device)
    null = torch.full_like(labels, num_classes)

    def run_official():
        with torch.no_grad(), _autocast(device):
            return sampler(official, noise, labels, null)

    def run_ours():
        with torch.no_grad(), _autocast(device):
            return euler_sample(ours, noise, labels, num_steps=num_steps, cfg_scale=cfg_scale,
                                guidance_interval=interval, null_label=num_classes)

    parity = _diff(run_official(), run_ours())
    return run_official, run_ours, parity


def paired_times(fn_a: Callable, fn_b: Callable, *, warmup: int, repeats: int, device: torch.device):
    """Interleaved timings a, b, a, b, ... (wall clock after a device synchronise; CUDA events are not needed for
    a ratio of two whole calls that both end in a synchronise)."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, out in ((fn_a, ta), (fn_b, tb)):
            synchronize(device)
            t0 = time.perf_counter()
            fn()
            synchronize(device)
            out.append(time.perf_counter() - t0)
    return ta, tb


def _diff(a: torch.Tensor, b: torch.Tensor) -> dict:
    """max |a - b|, and relative to max |a| (a: the official output)."""
    d = float((a.float() - b.float()).abs().max())
    return {"max_abs_diff": d, "rel_err": d / max(float(a.float().abs().max()), 1e-30)}


def compare(repo: Path, *, device: torch.device, batch: int = 8, sample_batch: int = 4, resolution: int = 32,
            num_steps: int = 10, warmup: int = 2, repeats: int = 7, official_args: dict | None = None,
            say: Callable[[str], None] = lambda _m: None) -> dict:
    """The side-by-side measurement; returns the JSON body (cases, parity, ratios ours/official).

    Forward parity is taken in float32 (torch's default matmul precision, no TF32) and, on CUDA, also under the bf16
    autocast that both trainers use."""
    official_args = official_args or OFFICIAL_ARGS
    cases: dict = {}
    ratios: dict = {}
    for kind in ("deco", "baseline"):
        args = official_args[kind]
        say(f"{kind}: building the official and our model")
        official, ours = build_pair(kind, repo, args)
        official, ours = official.to(device), ours.to(device)
        with torch.no_grad():
            g = torch.Generator().manual_seed(5)
            x = torch.randn(2, 3, resolution, resolution, generator=g).to(device)
            t, y = torch.tensor([0.3, 0.8], device=device), torch.tensor([1, args["num_classes"]], device=device)
            ref = official(x, t, y)
            fp32 = _diff(ref, ours(x, t, y))
            entry: dict = {"forward_max_abs_diff": fp32["max_abs_diff"], "forward_rel_err": fp32["rel_err"]}
            if device.type == "cuda":
                with _autocast(device):
                    a, b = official(x, t, y), ours(x, t, y)
                entry["forward_bf16_autocast"] = {**_diff(a, b), "vs_official_fp32": _diff(ref, a)["rel_err"],
                                                  "note": "ours vs official, both under bf16 autocast; "
                                                          "vs_official_fp32: the official bf16 output's own "
                                                          "relative error against its float32 output"}
            del ref
        say(f"{kind}: train step x{repeats} at batch {batch}, {resolution} px")
        nc = args["num_classes"]
        ta, tb = paired_times(train_step_fn(official, batch=batch, resolution=resolution, num_classes=nc, device=device),
                              train_step_fn(ours, batch=batch, resolution=resolution, num_classes=nc, device=device),
                              warmup=warmup, repeats=repeats, device=device)
        entry["train_step"] = {"batch": batch, "official": {"s_per_iter": spread(ta)}, "ours": {"s_per_iter": spread(tb)},
                               "paired_ratio": spread([b / a for a, b in zip(ta, tb)])}
        ratios[f"{kind}.train_step.s_per_iter.median"] = statistics.median(tb) / statistics.median(ta)
        official.eval(), ours.eval()
        for name, (cfg_scale, interval) in SAMPLER_SETTINGS.items():
            say(f"{kind}: sampler {name}, {num_steps} steps at batch {sample_batch}")
            run_a, run_b, parity = sampler_fns(official, ours, repo, cfg_scale=cfg_scale, interval=interval,
                                               num_steps=num_steps, batch=sample_batch, resolution=resolution,
                                               num_classes=nc, device=device)
            ta, tb = paired_times(run_a, run_b, warmup=1, repeats=repeats, device=device)
            entry[f"sampler_{name}"] = {
                "batch": sample_batch, "num_steps": num_steps, "cfg_scale": cfg_scale, "guidance_interval": interval,
                "sample_max_abs_diff": parity["max_abs_diff"], "sample_rel_err": parity["rel_err"],
                "official": {"s_per_image": spread([v / sample_batch for v in ta])},
                "ours": {"s_per_image": spread([v / sample_batch for v in tb])},
                "paired_ratio": spread([b / a for a, b in zip(ta, tb)])}
            ratios[f"{kind}.sampler_{name}.s_per_image.median"] = statistics.median(tb) / statistics.median(ta)
        cases[kind] = entry
        del official, ours
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {"config": {"official_args": official_args, "resolution": resolution, "train_batch": batch,
                       "sample_batch": sample_batch, "num_steps": num_steps, "warmup": warmup, "repeats": repeats,
                       "sampler_settings": {k: [v[0], list(v[1])] for k, v in SAMPLER_SETTINGS.items()}},
            "cases": cases, "ratios": {"ours/official": ratios}}


def memory_refusal(official_args: dict, device: torch.device, *, resolution: int, batch: int, **_) -> str | None:
    """One line refusing the measurement when the device cannot hold it: both models of a kind with their AdamW
    states live at once (train_step_fn), one of them steps at a time; no EMA, no REPA encoder."""

    needs = {f"the {kind} pair": memory_need.training_need(
                 our_config(kind, a), batch=batch, resolution=resolution, bf16=device.type == "cuda", ema=False,
                 models=2) for kind, a in official_args.items()}
    return memory_need.refusal("vs_official", needs, batch=batch, resolution=resolution, device=device,
                               hint="use --size s, or a GPU with more memory")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official", default=None, help=f"official checkout (default: env {OFFICIAL_ENV})")
    ap.add_argument("--out", type=Path, default=Path("bench/vs_official.json"))
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--size", choices=sorted(SIZES), default="s",
                    help="s: the small pair at 32 px (CPU-sized); xl: DeCo-XL and Baseline-XL at 256 px, train "
                         "batch 32, arguments from the checkout's configs_c2i (GPU)")
    args = ap.parse_args(argv)
    repo, why = find_official(args.official)
    if repo is None:
        print(f"vs_official: error: {why}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    official_args = official_xl_args(repo) if args.size == "xl" else OFFICIAL_ARGS
    refusal = memory_refusal(official_args, device, **SIZES[args.size])
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    body = compare(repo, device=device, repeats=args.repeats, official_args=official_args,
                   say=lambda m: print(f"vs_official: {m}", file=sys.stderr, flush=True), **SIZES[args.size])
    rev = envmod.git_revision(repo)
    result = {"schema": "deco-bench/vs-official/1",
              "env": envmod.fingerprint(device, dtype="bf16" if device.type == "cuda" else "float32", compile=[False]),
              "official_repo": {"path": str(repo), "git_revision": rev["git_revision"]}, **body}
    atomic_write_json(args.out, result)
    for k, v in body["ratios"]["ours/official"].items():
        print(f"{k:48s} ours/official = {v:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
