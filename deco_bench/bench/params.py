"""The fixed configuration of the recorded GPU benchmark (scripts/gpu_bench.sh), in the `bench:` section's types.

The `bench:` section of params.yaml itself is declared and validated in deco_bench/config.py with every other
section; this module only adds the paper-size profile the GPU script measures.
"""

from __future__ import annotations

from deco_bench.config import BenchParams, BenchSize, SampleSetting


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


__all__ = ["BenchParams", "BenchSize", "SampleSetting", "paper_gpu_profile"]
