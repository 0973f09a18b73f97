"""What the benchmark measures: the models (with their training recipes) from params, and the fixed paper-size
profile of the recorded GPU benchmark (scripts/gpu_bench.sh).

The `bench:` section of params.yaml itself is declared and validated in deco_bench/config.py with every other
section.
"""

from __future__ import annotations

from deco_bench import config as cfgmod
from deco_bench.bench.runner import ModelSpec, Recipe
from deco_bench.config import BenchParams, BenchSize, SampleSetting
from deco_bench.models import get_preset


def specs_from_params(p: cfgmod.Params, bp: BenchParams) -> list[ModelSpec]:
    repa = p.train.repa_encoder if bp.repa_encoder == "auto" else bp.repa_encoder
    specs = []
    for name in bp.models:
        e = p.model(name)
        recipe = Recipe(freqfm_weight=e.freqfm_weight, freqfm_quality=e.freqfm_quality, freqfm_gamma=e.freqfm_gamma,
                        repa_weight=e.repa_weight, repa_align_layer=p.train.repa_align_layer, repa_encoder=repa,
                        null_condition_p=e.null_condition_p, lr=p.train.lr, betas=(p.train.beta1, p.train.beta2),
                        weight_decay=p.train.weight_decay, ema_decay=p.train.ema_decay)
        specs.append(ModelSpec(name, e.label or name, e.preset, cfgmod.model_config(p, name), recipe))
    return specs


def paper_specs() -> list[ModelSpec]:
    """DeCo-XL and Baseline-XL with the official recipes (docs/paper.md §5.1-5.2; paper.OFFICIAL_PROFILE_VALUES)."""

    common = dict(repa_weight=0.5, repa_align_layer=8, repa_encoder="dinov2-b14", lr=1e-4, ema_decay=0.9999)
    return [ModelSpec("deco", "DeCo-XL/16", "deco-xl", get_preset("deco-xl", num_classes=1000),
                      Recipe(freqfm_weight=1.0, null_condition_p=0.2, **common)),
            ModelSpec("baseline", "Baseline-XL/16", "baseline-xl", get_preset("baseline-xl", num_classes=1000),
                      Recipe(freqfm_weight=0.0, null_condition_p=0.1, **common))]


def check_sizes(specs: list[ModelSpec], bp: BenchParams) -> None:
    problems = [(f"bench.sizes[{i}].resolution", f"{s.resolution} is not divisible by the patch size "
                                                 f"{m.cfg.patch_size} of {m.name}")
                for i, s in enumerate(bp.sizes) for m in specs if s.resolution % m.cfg.patch_size]
    if problems:
        raise cfgmod.ConfigError(problems)


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


__all__ = ["BenchParams", "BenchSize", "SampleSetting", "paper_gpu_profile", "paper_specs", "specs_from_params",
           "check_sizes"]
