"""Stage `bench`: DeCo vs the baseline side by side -- training-step throughput, sampling time per image, peak
memory, NVML telemetry and energy, FLOPs and MFU -- stamped with the environment fingerprint.

    python -m deco_bench.stages.bench --out bench/results.json \\
        --summary bench/summary.json                                            # params.yaml `bench:` (make repro)
    python -m deco_bench.stages.bench --profile-gpu-paper --out bench/recordings/h200-DATE.json \\
        --record-note "..."                                                     # DeCo-XL vs Baseline-XL, 256 + 512
    python -m deco_bench.stages.bench --compile none,blocks,full ...            # train.compile modes side by side

Timings depend on the machine, so dvc.yaml marks this stage `always_changed` (never restored from the
run-cache). On CPU the GPU-only fields (CUDA allocator, NVML, MFU) are null with the reason. --summary writes the
stage's DVC metrics: the headline figures and DeCo/baseline ratios, numbers only (deco_bench/bench/summary.py).
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
import time
from pathlib import Path

import torch

from deco_bench import config as cfgmod
from deco_bench.bench import env as envmod
from deco_bench.bench.params import check_sizes, paper_gpu_profile, paper_specs, specs_from_params
from deco_bench.bench.runner import Telemetry, autocast_dtype, run_benchmark
from deco_bench.bench.summary import summarise
from deco_bench.config import to_dict
from deco_bench.io import atomic_write_json, atomic_write_metrics
from deco_bench.stages import _common
from deco_bench.training.compile import MODES
from deco_bench.training.distributed import resolve_device

SCHEMA = "deco-bench/bench-results/1"


def run(args) -> None:
    t0 = time.perf_counter()
    if args.profile_gpu_paper:
        bp, specs, profile, scale = paper_gpu_profile(), paper_specs(), "gpu-paper", "paper"
        if args.resolutions:
            keep = {int(r) for r in args.resolutions.split(",")}
            bp = dataclasses.replace(bp, sizes=tuple(s for s in bp.sizes if s.resolution in keep))
        device = resolve_device(args.device or "auto")
    else:
        p = _common.setup(args.params)
        bp = p.bench
        specs, profile, scale = specs_from_params(p, bp), p.run.profile, p.run.scale
        device = resolve_device(args.device or p.run.device)
    if args.compile:
        modes = tuple(m.strip() for m in args.compile.split(","))
        if not modes or any(m not in MODES for m in modes) or len(set(modes)) != len(modes):
            raise cfgmod.ConfigError([("--compile", f"got {args.compile!r}; expected distinct modes out of "
                                                    f"{', '.join(MODES)} separated by commas, e.g. none,blocks,full")])
        bp = dataclasses.replace(bp, compile=modes)
    if args.train_batch < 0:
        raise cfgmod.ConfigError([("--train-batch", f"got {args.train_batch}; expected a batch >= 1 (0: the profile's)")])
    if args.train_batch:
        bp = dataclasses.replace(bp, sizes=tuple(dataclasses.replace(s, train_batch=args.train_batch) for s in bp.sizes))
    if args.train_only:
        bp = dataclasses.replace(bp, sampling=())
    if not bp.sizes:
        raise cfgmod.ConfigError([("--resolutions", f"{args.resolutions!r} matched no size of the profile")])
    check_sizes(specs, bp)
    telemetry = Telemetry(device, bp.nvml_interval_s)
    body = run_benchmark(specs, bp, device, telemetry=telemetry,
                         progress=lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True))
    dtype = autocast_dtype(bp.precision, device)
    result = {
        "schema": SCHEMA, "profile": profile, "scale": scale,
        "env": envmod.fingerprint(device, dtype="bf16" if dtype is torch.bfloat16 else "float32",
                                  compile=list(bp.compile), nvml_info=telemetry.info()),
        "settings": to_dict(bp),
        "units": {"*_s": "seconds", "*_per_s": "per second", "*_bytes": "bytes", "flops_*": "FLOPs (2 per MAC)",
                  "mfu": "fraction of peak.flops_per_s", "power_w": "watts", "*_mhz": "MHz", "energy_j*": "joules"},
        **body,
        "wall_s": time.perf_counter() - t0,
    }
    if args.record_note:
        result["recording"] = {"date": datetime.date.today().isoformat(), "note": args.record_note}
    atomic_write_json(args.out, result)
    if args.summary:
        atomic_write_metrics(args.summary, summarise(result))
    print(f"bench: wrote {args.out} in {result['wall_s']:.1f} s", file=sys.stderr)


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--out", type=Path, default=Path("bench/results.json"))
    ap.add_argument("--summary", type=Path, default=None,
                    help="also write the headline figures and ratios, numbers only (DVC metrics: bench/summary.json)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None, help="default: run.device")
    ap.add_argument("--profile-gpu-paper", action="store_true",
                    help="DeCo-XL vs Baseline-XL at 256 and 512 (bench.params.paper_gpu_profile); ignores --params")
    ap.add_argument("--resolutions", default="", help="with --profile-gpu-paper: only these, e.g. 256")
    ap.add_argument("--compile", default="", help="override bench.compile: modes separated by commas, e.g. "
                                                  "none,blocks,full")
    ap.add_argument("--train-batch", type=int, default=0, help="override every size's train_batch (e.g. 64)")
    ap.add_argument("--train-only", action="store_true", help="measure the train step only, no sampling")
    ap.add_argument("--record-note", default="", help="label a committed recording (bench/recordings/)")
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args))


if __name__ == "__main__":
    main()
