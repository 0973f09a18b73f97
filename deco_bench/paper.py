"""The paper's numbers and the official configs' values, transcribed from docs/paper.md.

These are the only paper numbers in deco-bench: the report's "paper" columns, the ablation tables, the
convergence points and the profile checks all read them from here. Citations point at docs/paper.md sections.
Where the paper and the official code differ, the code's value is the one used for parity (docs/paper.md §0).
"""

from __future__ import annotations

PROTOCOL = ("ImageNet, 50,000 samples, ADM evaluation suite (FID, sFID, IS, precision, recall against the "
            "ADM reference batch), Euler sampler")

# Table 2, ImageNet 256x256 with CFG (docs/paper.md §1.1); pixel-space rows relevant to DeCo.
TABLE2_256 = [
    {"method": "Baseline-XL/16", "epochs": 320, "nfe": "100x2", "latency_s": 1.03, "fid": 2.79, "sfid": 4.90,
     "is": 296.0, "precision": 0.79, "recall": 0.60, "model": "baseline"},
    {"method": "DeCo-XL/16", "epochs": 320, "nfe": "100x2", "latency_s": 1.05, "fid": 1.90, "sfid": 4.47,
     "is": 303.0, "precision": 0.80, "recall": 0.61, "model": "deco"},
    {"method": "DeCo-XL/16", "epochs": 800, "nfe": "100x2", "latency_s": 1.05, "fid": 1.71, "sfid": 4.54,
     "is": 304.0, "precision": 0.80, "recall": 0.61, "model": "deco"},
    {"method": "DeCo-XL/16", "epochs": 800, "nfe": "250x2", "latency_s": 2.63, "fid": 1.62, "sfid": 4.41,
     "is": 301.0, "precision": 0.80, "recall": 0.62, "model": "deco"},
    {"method": "DeCo-XL/16 (Heun)", "epochs": 600, "nfe": "100x2", "latency_s": 1.05, "fid": 1.69, "sfid": 4.59,
     "is": 304.0, "precision": 0.79, "recall": 0.63, "model": "deco"},
]

# Table 2, ImageNet 512x512 with CFG (docs/paper.md §1.2).
TABLE2_512 = [
    {"method": "DeCo-XL/16", "epochs": 340, "nfe": "100x2", "latency_s": 2.25, "fid": 2.22, "sfid": 4.67,
     "is": 290.0, "precision": 0.80, "recall": 0.60, "model": "deco"},
]

# Table 1, L size, 200K iterations, batch 256, 50 Euler steps, no CFG (docs/paper.md §2.1). Memory in GB, speed s/it.
# The rows with an official config, in the paper's order; `variant` is the models: entry that reproduces each.
# PixNerd prints 458M; configs_c2i/Baseline_PixNerd.yaml builds to 452.114M (PARAMS_M, docs/paper.md §2.1).
TABLE1 = [
    {"method": "PixNerd", "params_m": 458, "train_mem_gb": 29.2, "train_s_per_it": 0.25, "inf_mem_gb": 2.6,
     "s_per_image": 0.48, "s_per_step": 0.010, "fid": 37.49, "sfid": 10.65, "is": 43.01, "recall": 0.62,
     "variant": "pixnerd"},
    {"method": "JiT+REPA", "params_m": 459, "train_mem_gb": 24.8, "train_s_per_it": 0.23, "inf_mem_gb": 2.5,
     "s_per_image": 0.46, "s_per_step": 0.009, "fid": 39.06, "sfid": 11.45, "is": 39.57, "recall": 0.63,
     "variant": "jit"},
    {"method": "Baseline", "params_m": 459, "train_mem_gb": 24.8, "train_s_per_it": 0.22, "inf_mem_gb": 2.5,
     "s_per_image": 0.46, "s_per_step": 0.009, "fid": 61.10, "sfid": 15.86, "is": 16.81, "recall": 0.60,
     "variant": "baseline"},
    {"method": "DeCo w/o REPA", "params_m": 426, "train_mem_gb": 26.4, "train_s_per_it": 0.22, "inf_mem_gb": 2.4,
     "s_per_image": 0.46, "s_per_step": 0.009, "fid": 67.55, "sfid": 10.58, "is": 19.10, "recall": 0.56,
     "variant": "deco_no_repa"},
    {"method": "DeCo w/o FreqFM", "params_m": 426, "train_mem_gb": 27.5, "train_s_per_it": 0.24, "inf_mem_gb": 2.4,
     "s_per_image": 0.46, "s_per_step": 0.009, "fid": 34.12, "sfid": 10.41, "is": 46.44, "recall": 0.64,
     "variant": "deco_no_freqfm"},
    {"method": "DeCo", "params_m": 426, "train_mem_gb": 27.5, "train_s_per_it": 0.24, "inf_mem_gb": 2.4,
     "s_per_image": 0.46, "s_per_step": 0.009, "fid": 31.35, "sfid": 9.34, "is": 48.35, "recall": 0.65,
     "variant": "deco"},
]

# Table 4 (docs/paper.md §2.2): axis -> [(setting, FID, sFID, IS)], default setting first-marked by DEFAULTS.
# (a) and (b) ran without FreqFM; (c)-(f) with it.
TABLE4 = {
    "decoder_hidden": {"with_freqfm": False, "default": 32,
                       "rows": [(16, 37.63, 10.64, 41.54), (32, 34.12, 10.41, 46.44), (64, 35.88, 10.79, 44.07)]},
    "decoder_depth": {"with_freqfm": False, "default": 3,
                      "rows": [(1, 37.10, 10.73, 41.06), (3, 34.12, 10.41, 46.44), (6, 35.46, 10.82, 44.60)]},
    "decoder_patch_size": {"with_freqfm": True, "default": 1,
                           "rows": [(1, 31.35, 9.34, 48.35), (4, 34.39, 11.15, 45.53), (16, 55.59, 44.16, 34.44)]},
    "interaction": {"with_freqfm": True, "default": "adaln",
                    "rows": [("adaln", 31.35, 9.34, 48.35), ("add", 36.02, 9.99, 41.74)]},
    "freqfm_weight": {"with_freqfm": True, "default": 1.0,
                      "rows": [(0.5, 33.54, 10.27, 46.38), (1.0, 31.35, 9.34, 48.35), (2.0, 32.97, 9.42, 46.55)]},
    "freqfm_quality": {"with_freqfm": True, "default": 85,
                       "rows": [(50, 31.54, 9.45, 47.70), (85, 31.35, 9.34, 48.35), (100, 33.84, 10.74, 46.14)]},
}
TABLE4_PROTOCOL = "ImageNet 256, L size, 200K iterations, batch 256, 50 Euler steps, no CFG, FID-50K (docs/paper.md §2.2)"

# Fig. 5 FID-vs-iteration points, XL at 256 (docs/paper.md §3.3; [PLOT] read-offs, ~+-0.01 except printed values).
FIG5 = {
    "iterations": [200_000, 400_000, 600_000, 800_000, 1_200_000, 1_600_000, 4_000_000],
    "baseline_fid": [6.56, 3.62, 3.21, 2.97, 2.83, 2.79, 2.59],
    "deco_fid": [4.04, 2.57, 2.21, 2.00, 1.96, 1.90, 1.71],
    "claim": "DeCo reaches 2.57 FID in 400K iterations, 10x faster than the baseline (2.59 at 4.0M)",
}

# Fig. 4 DCT energy read-offs (docs/paper.md §4): normalised log energy at high zig-zag indices.
FIG4 = {"baseline_dit_high": (0.38, 0.39), "velocity_high": (0.29, 0.30), "deco_dit_high": (0.13, 0.15)}

# Parameter counts from the official classes (docs/paper.md §3.1, [COMP]); ours must match exactly.
PARAMS_M = {"deco-l": 426.938, "deco-xl": 682.283, "baseline-l": 459.172, "baseline-xl": 676.360,
            "pixnerd-l": 452.114}
GFLOPS_FWD_256 = {"deco-l": 149.13, "deco-xl": 236.48, "baseline-l": 155.71, "baseline-xl": 229.66,
                  "pixnerd-l": 164.45}

# Timing claims (docs/paper.md §2.1, §3.4): A800 GPUs.
TIMING = {"train_s_per_it_L_b256_8xA800": {"deco": 0.24, "baseline": 0.22, "pixnerd": 0.25, "jit": 0.23},
          "latency_s_XL_256_100x2_A800": {"deco": 1.05, "baseline": 1.03},
          "latency_s_XL_512_100x2_A800": {"deco": 2.25}}

# The official configs' values that the paper profiles must reproduce (docs/paper.md §5.2), as dotted params keys.
OFFICIAL_PROFILE_VALUES = {
    "imagenet256-xl": {
        "data.resolution": 256, "data.num_classes": 1000,
        "models.deco.preset": "deco-xl", "models.baseline.preset": "baseline-xl",
        "models.deco.null_condition_p": 0.2, "models.baseline.null_condition_p": 0.1,
        "models.deco.freqfm_weight": 1.0, "models.deco.freqfm_quality": 85, "models.deco.repa_weight": 0.5,
        "models.baseline.freqfm_weight": 0.0, "models.baseline.repa_weight": 0.5,
        "train.steps": 4_000_000, "train.global_batch": 256, "train.grad_accum": 1, "train.lr": 1e-4,
        "train.lr_warmup": 0, "train.lr_schedule": "constant", "train.grad_clip": 0.0,  # constant lr, no clipping
        "train.weight_decay": 0.0, "train.beta1": 0.9, "train.beta2": 0.999, "train.ema_decay": 0.9999,
        "train.lognorm_t": True, "train.timeshift": 1.0, "train.repa_encoder": "dinov2-b14",
        "train.repa_align_layer": 8,
        "sample.num_images": 50_000, "sample.sampler": "euler", "sample.num_steps": 100, "sample.cfg_scale": 3.2,
        "sample.guidance_interval": [0.1, 1.0], "sample.timeshift": 1.0, "evaluate.feature_space": "inception",
    },
    "imagenet512-xl": {
        "data.resolution": 512, "data.num_classes": 1000, "models.deco.preset": "deco-xl",
        "models.deco.null_condition_p": 0.2, "train.global_batch": 256, "train.grad_accum": 2, "train.lr": 1e-4,
        "train.lr_warmup": 0, "train.lr_schedule": "constant", "train.grad_clip": 0.0,  # constant lr, no clipping
        "train.ema_decay": 0.9999, "train.repa_encoder": "dinov2-b14", "train.repa_align_layer": 8,
        "sample.num_images": 50_000, "sample.num_steps": 100, "sample.cfg_scale": 5.0,
        "sample.guidance_interval": [0.1, 1.0], "evaluate.feature_space": "inception",
    },
    "ablation-l": {
        "data.resolution": 256, "data.num_classes": 1000, "models.deco.preset": "deco-l",
        "models.baseline.preset": "baseline-l", "models.deco.null_condition_p": 0.1,
        "train.steps": 200_000, "train.global_batch": 256, "train.lr": 1e-4,
        "train.lr_warmup": 0, "train.lr_schedule": "constant", "train.grad_clip": 0.0,
        "train.ema_decay": 0.9999,  # constant lr, no clipping
        "train.repa_encoder": "dinov2-b14", "train.repa_align_layer": 8, "sample.num_images": 50_000,
        "sample.num_steps": 50, "sample.cfg_scale": 1.0, "evaluate.feature_space": "inception",
        # configs_c2i/Baseline_PixNerd.yaml: PixNerDiT under the REPA trainer (no FreqFM), default label dropout.
        "models.pixnerd.preset": "pixnerd-l", "models.pixnerd.arch": {}, "models.pixnerd.freqfm_weight": 0.0,
        "models.pixnerd.repa_weight": 0.5, "models.pixnerd.null_condition_p": 0.1,
        # configs_c2i/Baseline_DiT_JiT.yaml: the Baseline-L network under training_repa_JiT (x-prediction).
        "models.jit.preset": "baseline-l", "models.jit.arch": {"prediction": "x"}, "models.jit.freqfm_weight": 0.0,
        "models.jit.repa_weight": 0.5, "models.jit.null_condition_p": 0.1,
    },
}
