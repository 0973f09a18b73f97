"""Training losses: flow matching, FreqFM (DeCo's frequency-aware FM loss) and REPA alignment.

total = L_FM + freqfm_weight * L_FreqFM + repa_weight * L_REPA   (paper Eq. 7; official `training_repa_DeCo.py`,
defaults 1.0 and 0.5; docs/paper.md §5.1). The baseline is the same with freqfm_weight = 0 (official `training_repa.py`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from deco_bench.spectral.dct import JPEG_CHROMA_BASE, JPEG_LUMA_BASE, block_dct2d, rgb_to_ycbcr, scaled_jpeg_table


def fm_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Flow-matching loss: mean squared error of the predicted velocity (official weight fn `constant` = 1)."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return (pred - target).pow(2).mean()


# ---------------------------------------------------------------------------------------------------- FreqFM

def jpeg_frequency_weights(quality: int = 85, gamma: float = 1.0) -> torch.Tensor:
    """Per-coefficient FreqFM weights (3, 8, 8) for Y, Cb, Cr, float32 on CPU.

    w = (mean(Q) / Q) ** gamma, then divided by its mean per channel, with Q the IJG-scaled JPEG table: luminance
    for Y, chrominance for Cb and Cr (paper Eq. 6; official `_build_freq_weight`, mode 'inv_gamma'). Perceptually
    important (low) frequencies get large weights; quality 100 makes every Q = 1, hence all weights 1.
    """
    return _weights_cpu(int(quality), float(gamma)).clone()


@functools.lru_cache(maxsize=16)
def _weights_cpu(quality: int, gamma: float) -> torch.Tensor:
    def normalised(q_table: torch.Tensor) -> torch.Tensor:
        w = (q_table.mean() / q_table) ** gamma
        return w / w.mean()

    w_luma = normalised(scaled_jpeg_table(JPEG_LUMA_BASE, quality))
    w_chroma = normalised(scaled_jpeg_table(JPEG_CHROMA_BASE, quality))
    return torch.stack([w_luma, w_chroma, w_chroma])


@functools.lru_cache(maxsize=32)
def _weights_on(quality: int, gamma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Cached per (quality, gamma, device, dtype): the loss runs every step and must not rebuild or re-upload this.
    return _weights_cpu(quality, gamma).to(device=device, dtype=dtype).view(1, 3, 1, 1, 8, 8)


def freq_fm_loss(pred: torch.Tensor, target: torch.Tensor, quality: int = 85, gamma: float = 1.0) -> torch.Tensor:
    """FreqFM: mean over (B, 3, blocks, 8, 8) of w * (DCT(YCbCr(pred)) - DCT(YCbCr(target)))^2.

    YCbCr and the block DCT are linear (reflect padding too), so we transform the difference once instead of both
    tensors; equal to the official loss up to float rounding. Computed in float32 with autocast off: the 8x8
    matmuls are cheap, and bf16 would round the small high-frequency residuals this loss is about.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    with torch.autocast(device_type=pred.device.type, enabled=False):
        diff = pred.float() - target.float()
        coeffs = block_dct2d(rgb_to_ycbcr(diff))                   # (B, 3, Bh, Bw, 8, 8)
        w = _weights_on(int(quality), float(gamma), coeffs.device, coeffs.dtype)
        return (w * coeffs.pow(2)).mean()


# ------------------------------------------------------------------------------------------------------ REPA

class RepaProjector(nn.Sequential):
    """REPA head on DiT tokens: Linear-SiLU-Linear-SiLU-Linear (official trainer's `proj`; docs/paper.md §5.1:
    hidden -> hidden -> 768 for DINOv2-B). Lives with the loss, not the model, as in the official code."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__(
            nn.Linear(in_dim, hidden_dim), nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.SiLU(),
            nn.Linear(hidden_dim, out_dim),
        )


def repa_loss(src_tokens: torch.Tensor, dst_tokens: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity over the feature dim, averaged over tokens and batch. In [0, 2].

    src: projected DiT tokens (B, N_src, D); dst: frozen encoder tokens (B, N, D). When N_src > N the extra src
    tokens are dropped from the end, as the official trainer does; fewer src tokens than dst is an error.
    """
    if src_tokens.dim() != 3 or dst_tokens.dim() != 3:
        raise ValueError(f"REPA tokens must be (B, N, D), got {tuple(src_tokens.shape)} and {tuple(dst_tokens.shape)}")
    if src_tokens.shape[0] != dst_tokens.shape[0] or src_tokens.shape[2] != dst_tokens.shape[2]:
        raise ValueError(f"REPA batch/feature dims differ: {tuple(src_tokens.shape)} vs {tuple(dst_tokens.shape)}")
    n = dst_tokens.shape[1]
    if src_tokens.shape[1] < n:
        raise ValueError(f"REPA: {src_tokens.shape[1]} DiT tokens but {n} encoder tokens; the encoder grid must "
                         f"not be finer than the DiT patch grid")
    src_tokens = src_tokens[:, :n]
    return (1 - F.cosine_similarity(src_tokens, dst_tokens.to(src_tokens.dtype), dim=-1)).mean()


# ----------------------------------------------------------------------------------------------- combination

@dataclass(frozen=True)
class LossWeights:
    """Weights of the DeCo objective (official defaults: freq_loss_weight 1, feat_loss_weight 0.5, quality 85,
    gamma 1). freqfm = 0 gives the baseline objective; repa = 0 gives 'w/o REPA' (Table 1)."""

    freqfm: float = 1.0
    repa: float = 0.5
    freq_quality: int = 85
    freq_gamma: float = 1.0

    def __post_init__(self) -> None:
        if self.freqfm < 0 or self.repa < 0:
            raise ValueError(f"loss weights must be >= 0, got freqfm={self.freqfm}, repa={self.repa}")
        if not 1 <= int(self.freq_quality) <= 100:
            raise ValueError(f"freq_quality must be in [1, 100], got {self.freq_quality}")


def deco_loss(pred_v: torch.Tensor, target_v: torch.Tensor, src_tokens: torch.Tensor | None = None,
              dst_tokens: torch.Tensor | None = None, weights: LossWeights = LossWeights()) -> dict[str, torch.Tensor]:
    """Combined objective. Returns {'fm', ['freqfm'], ['repa'], 'loss'}: a component is present only when it is
    computed (freqfm when weights.freqfm > 0; repa when both token tensors are given and weights.repa > 0)."""
    out = {"fm": fm_loss(pred_v, target_v)}
    loss = out["fm"]
    if weights.freqfm > 0:
        out["freqfm"] = freq_fm_loss(pred_v, target_v, weights.freq_quality, weights.freq_gamma)
        loss = loss + weights.freqfm * out["freqfm"]
    if (src_tokens is None) != (dst_tokens is None):
        raise ValueError("REPA needs both src_tokens and dst_tokens, or neither")
    if src_tokens is not None and weights.repa > 0:
        out["repa"] = repa_loss(src_tokens, dst_tokens)
        loss = loss + weights.repa * out["repa"]
    out["loss"] = loss
    return out
