"""Model configurations: the paper's sizes (docs/paper.md §5.2, §5.3) and small CPU sizes; build, count, FLOPs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

KINDS = ("deco", "baseline", "pixnerd")
INTERACTIONS = ("adaln", "add")
# What the network's output means: the velocity v, or the clean image x (JiT; the sampler and the loss convert it
# to v with diffusion.path.velocity_from_x, as official `training_repa_JiT.py` and `EulerSamplerJiT` do).
PREDICTIONS = ("v", "x")


@dataclass(frozen=True)
class ModelConfig:
    """One denoiser. `depth` counts DiT blocks only; decoder_* fields are ignored for the baseline.

    kind 'pixnerd' (PixNerd, the Table 1 row) uses decoder_hidden / decoder_depth for its neural-field blocks and
    field_mlp_ratio for their hidden width (official `nerf_mlpratio`); decoder_patch_size and interaction are DeCo's.
    `prediction` 'x' trains and samples the network as an x-predictor (JiT+REPA, Table 1).
    """

    kind: str
    hidden_size: int
    num_heads: int
    depth: int
    patch_size: int = 16
    in_channels: int = 3
    num_classes: int = 1000
    decoder_hidden: int = 32
    decoder_depth: int = 3
    decoder_patch_size: int = 1
    interaction: str = "adaln"
    max_freqs: int = 8
    field_mlp_ratio: int = 2
    prediction: str = "v"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"ModelConfig.kind must be one of {KINDS}, got {self.kind!r}")
        if self.interaction not in INTERACTIONS:
            raise ValueError(f"ModelConfig.interaction must be one of {INTERACTIONS}, got {self.interaction!r}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"ModelConfig.prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if self.kind == "deco" and self.prediction != "v":
            raise ValueError("ModelConfig.prediction 'x' (JiT) is supported for the baseline and pixnerd networks, "
                             "not deco")
        for name in ("hidden_size", "num_heads", "depth", "patch_size", "in_channels", "num_classes",
                     "decoder_hidden", "decoder_depth", "decoder_patch_size", "max_freqs", "field_mlp_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"ModelConfig.hidden_size {self.hidden_size} must be divisible by "
                             f"num_heads {self.num_heads}")
        if (self.hidden_size // self.num_heads) % 4:
            raise ValueError(f"ModelConfig: head dim hidden_size/num_heads = {self.hidden_size // self.num_heads} "
                             f"must be divisible by 4 (2-D RoPE)")
        if self.kind == "deco" and self.patch_size % self.decoder_patch_size:
            raise ValueError(f"ModelConfig.decoder_patch_size {self.decoder_patch_size} must divide "
                             f"patch_size {self.patch_size}")


def _deco(hidden: int, heads: int, depth: int, **kw) -> ModelConfig:
    return ModelConfig("deco", hidden, heads, depth, **kw)


def _baseline(hidden: int, heads: int, depth: int, **kw) -> ModelConfig:
    return ModelConfig("baseline", hidden, heads, depth, **kw)


def _pixnerd(hidden: int, heads: int, depth: int, **kw) -> ModelConfig:
    return ModelConfig("pixnerd", hidden, heads, depth, **kw)


# Paper sizes: DeCo = DiT blocks + 3 decoder blocks of width 32 (Table 5); the baselines have the DiT depth of
# the official Baseline configs (24 for L: DeCo-L replaces its last two DiT blocks by the decoder; 28 for XL).
# Small sizes mirror that rule: the baseline has two more DiT blocks than DeCo.
PRESETS: dict[str, ModelConfig] = {
    "deco-l": _deco(1024, 16, 22),
    "deco-xl": _deco(1152, 16, 28),
    "baseline-l": _baseline(1024, 16, 24),
    "baseline-xl": _baseline(1152, 16, 28),
    # configs_c2i/Baseline_PixNerd.yaml: 24 blocks, the last 2 neural-field blocks of width 64 (docs/paper.md §2.1).
    "pixnerd-l": _pixnerd(1024, 16, 22, decoder_hidden=64, decoder_depth=2, field_mlp_ratio=2),
    # Embedded default (32 px images, 8x8 tokens of 4x4 pixels).
    "deco-s": _deco(192, 4, 4, patch_size=4, num_classes=10, decoder_hidden=32, decoder_depth=2),
    "baseline-s": _baseline(192, 4, 6, patch_size=4, num_classes=10),
    "pixnerd-s": _pixnerd(192, 4, 4, patch_size=4, num_classes=10, decoder_hidden=16, decoder_depth=2),
    # Unit tests.
    "deco-tiny": _deco(64, 4, 2, patch_size=4, num_classes=10, decoder_hidden=16, decoder_depth=2),
    "baseline-tiny": _baseline(64, 4, 4, patch_size=4, num_classes=10),
    "pixnerd-tiny": _pixnerd(64, 4, 2, patch_size=4, num_classes=10, decoder_hidden=8, decoder_depth=2),
}


def get_preset(name: str, **overrides) -> ModelConfig:
    """A preset by name, with fields replaced; an unknown name or field is a ValueError that lists valid ones."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; valid presets: {', '.join(sorted(PRESETS))}")
    fields = [f.name for f in dataclasses.fields(ModelConfig)]
    unknown = [k for k in overrides if k not in fields]
    if unknown:
        raise ValueError(f"unknown ModelConfig field(s) {unknown} for preset {name!r}; valid fields: "
                         f"{', '.join(fields)}")
    return dataclasses.replace(PRESETS[name], **overrides)


def build_model(cfg: ModelConfig) -> nn.Module:
    from .deco import DeCo
    from .dit import PixelDiT
    from .pixnerd import PixNerd

    return {"deco": DeCo, "baseline": PixelDiT, "pixnerd": PixNerd}[cfg.kind](cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def decoder_parameters(cfg: ModelConfig) -> int:
    """Closed-form parameter count of the pixel decoder of `cfg` (cross-checked against the module in tests)."""
    d, q, c = cfg.decoder_hidden, cfg.decoder_patch_size, cfg.in_channels
    g2 = (cfg.patch_size // q) ** 2  # decoder tokens per DiT patch
    pixel_embed = (c * q * q + cfg.max_freqs ** 2 + 1) * d
    input_proj = d * d + d
    cond_embed = (cfg.hidden_size + 1) * g2 * d
    block = 2 * (d * d + d) + 2 * d + (3 * d * d + 3 * d if cfg.interaction == "adaln" else 0)
    final = (d + 1) * c * q * q
    return pixel_embed + input_proj + cond_embed + cfg.decoder_depth * block + final


def matched_decoder_hidden(cfg: ModelConfig, reference_hidden: int = 32) -> int:
    """Decoder width for `cfg`'s decoder patch size whose decoder has about as many parameters as the per-pixel
    (q = 1) decoder of width `reference_hidden` (paper Table 4(c): "similar parameter counts")."""
    target = decoder_parameters(dataclasses.replace(cfg, decoder_patch_size=1, decoder_hidden=reference_hidden))
    best = min(range(1, 8 * reference_hidden * cfg.decoder_patch_size + 1),
               key=lambda d: abs(decoder_parameters(dataclasses.replace(cfg, decoder_hidden=d)) - target))
    return best


def model_flops_per_image(cfg: ModelConfig, resolution: int) -> int:
    """Forward FLOPs for one image (2 per multiply-add), counted by torch's FlopCounterMode on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    if resolution % cfg.patch_size:
        raise ValueError(f"resolution {resolution} is not a multiple of patch_size {cfg.patch_size}")
    with torch.device("meta"):
        model = build_model(cfg)
        x = torch.zeros(1, cfg.in_channels, resolution, resolution)
        t = torch.zeros(1)
        y = torch.zeros(1, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x, t, y)
    return int(counter.get_total_flops())


__all__ = ["ModelConfig", "PRESETS", "PREDICTIONS", "get_preset", "build_model", "count_parameters", "decoder_parameters",
           "matched_decoder_hidden", "model_flops_per_image"]
