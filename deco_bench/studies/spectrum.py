"""DCT energy analysis of paper Fig. 4 (Algorithm 3, App. E.3; docs/paper.md §4).

What is measured, per sampling step of an Euler run: the DiT output (for DeCo the condition the pixel decoder
receives, SiLU(t_emb + tokens); for the baseline the last block's hidden state before the final layer, as the
official `forward_sx` returns) and the predicted pixel velocity. Both come from `model.forward_features`.

How (Algorithm 3): cut every channel of a tensor (B, C, H, W) into 8x8 blocks, 2-D DCT each block (the same
`block_dct2d` the FreqFM loss uses), square, reorder by the JPEG zig-zag index (0 = DC), sum over blocks, images and
steps, and count the blocks; then S = log(1 + E / n) and S / max S ("log-scale normalisation to [0, 1]").

A block is one channel of one 8x8 spatial window of one image at one step. The paper unfolds (B*T, H, W, C)
feature maps the same way; at our embedded size (32 px, DiT patch 4) the DiT map is 8x8, so each channel of it is
exactly one block, while at 256 px / patch 16 it is 16x16 = 4 blocks per channel.
"""

from __future__ import annotations

import torch

from deco_bench.diffusion.sampler import class_balanced_labels, euler_sample, sample_noise
from deco_bench.spectral.dct import BLOCK, block_dct2d, zigzag

NUM_COEFFS = BLOCK * BLOCK
# First zig-zag index with u + v >= 8: indices 0..35 are the 36 coefficients with u + v <= 7. Fig. 4's curves
# reach their high-frequency plateau from about index 37 on (docs/paper.md §4), so the "high band" starts here.
HIGH_FREQ_CUT = 36
TENSORS = ("dit_out", "velocity")


# ------------------------------------------------------------------------------------------------- pure maths

def zigzag_energy(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(B, C, H, W) -> (energy (64,) float64: sum of squared 8x8-block DCT coefficients per zig-zag index,
    number of blocks B * C * ceil(H/8) * ceil(W/8)). Sides that are not multiples of 8 are reflect-padded
    (block_dct2d's convention)."""
    if x.dim() != 4:
        raise ValueError(f"zigzag_energy needs (B, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[-2] < BLOCK or x.shape[-1] < BLOCK:
        raise ValueError(f"zigzag_energy needs H, W >= {BLOCK}, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("zigzag_energy got non-finite values")
    coeffs = block_dct2d(x.detach().to(torch.float64))  # B C Bh Bw 8 8
    per_block = zigzag(coeffs.pow(2)).reshape(-1, NUM_COEFFS)  # n 64
    return per_block.sum(0).cpu(), per_block.shape[0]


def normalise_log_energy(energy: torch.Tensor, num_blocks: int) -> torch.Tensor:
    """Algorithm 3: S = log(1 + E / n), returned as S / max S (so the largest coefficient is 1)."""
    energy = torch.as_tensor(energy, dtype=torch.float64)
    if num_blocks < 1:
        raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
    if (energy < 0).any() or not torch.isfinite(energy).all():
        raise ValueError("energy must be finite and non-negative")
    s = torch.log1p(energy / num_blocks)
    peak = s.max()
    if peak <= 0:
        raise ValueError("all energies are zero: the normalisation S / max S is undefined")
    return s / peak


def high_frequency_share(energy: torch.Tensor, cut: int = HIGH_FREQ_CUT) -> float:
    """Share of the (linear) energy at zig-zag indices >= cut: sum E[cut:] / sum E."""
    energy = torch.as_tensor(energy, dtype=torch.float64)
    if energy.shape != (NUM_COEFFS,):
        raise ValueError(f"energy must have shape ({NUM_COEFFS},), got {tuple(energy.shape)}")
    if not 1 <= cut < NUM_COEFFS:
        raise ValueError(f"cut must be in 1..{NUM_COEFFS - 1}, got {cut}")
    total = energy.sum()
    if total <= 0:
        raise ValueError("total energy is zero: the share is undefined")
    return float(energy[cut:].sum() / total)


def curve_summary(energy: torch.Tensor, num_blocks: int, cut: int = HIGH_FREQ_CUT) -> dict:
    """The normalised curve plus the two single numbers: the linear energy share above `cut`, and the mean of the
    normalised log curve above `cut` (the quantity read off Fig. 4; paper.FIG4)."""
    if not float(torch.as_tensor(energy).sum()) > 0:  # e.g. a zero-initialised output layer: nothing to normalise
        return {"curve": None, "high_share": None, "mean_log_high": None, "reason": "zero energy"}
    curve = normalise_log_energy(energy, num_blocks)
    return {"curve": curve.tolist(), "high_share": high_frequency_share(energy, cut),
            "mean_log_high": float(curve[cut:].mean())}


class SpectrumAccumulator:
    """Zig-zag energy and block counts per tensor name and sampling step; summed over steps on demand."""

    def __init__(self, num_steps: int):
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        self.num_steps = num_steps
        self.energy: dict[str, torch.Tensor] = {}  # name -> (num_steps, 64) float64
        self.blocks: dict[str, torch.Tensor] = {}  # name -> (num_steps,) int64
        self.shapes: dict[str, tuple[int, ...]] = {}  # name -> per-image shape (C, H, W)
        self.times: list[float | None] = [None] * num_steps

    def add(self, name: str, step: int, x: torch.Tensor, t: float | None = None) -> None:
        if not 0 <= step < self.num_steps:
            raise ValueError(f"step must be in 0..{self.num_steps - 1}, got {step}")
        shape = tuple(x.shape[1:])
        if self.shapes.setdefault(name, shape) != shape:
            raise ValueError(f"{name}: per-image shape changed from {self.shapes[name]} to {shape}")
        e, n = zigzag_energy(x)
        self.energy.setdefault(name, torch.zeros(self.num_steps, NUM_COEFFS, dtype=torch.float64))[step] += e
        self.blocks.setdefault(name, torch.zeros(self.num_steps, dtype=torch.int64))[step] += n
        if t is not None:
            self.times[step] = float(t)

    def total(self, name: str) -> tuple[torch.Tensor, int]:
        """Energy summed over all steps and the matching block count."""
        return self.energy[name].sum(0), int(self.blocks[name].sum())

    def summary(self, cut: int = HIGH_FREQ_CUT) -> dict:
        """JSON-ready: per tensor the overall curve and summaries, and the same per sampling step."""
        out = {}
        for name in self.energy:
            if (self.blocks[name] == 0).any():
                missing = (self.blocks[name] == 0).nonzero().flatten().tolist()
                raise ValueError(f"{name}: no data for steps {missing}")
            energy, n = self.total(name)
            steps = [curve_summary(self.energy[name][i], int(self.blocks[name][i]), cut)
                     for i in range(self.num_steps)]
            out[name] = {**curve_summary(energy, n, cut), "energy_per_block": (energy / n).tolist(),
                         "num_blocks": n, "shape": list(self.shapes[name]),
                         "per_step": {"curve": [s["curve"] for s in steps],
                                      "high_share": [s["high_share"] for s in steps],
                                      "mean_log_high": [s["mean_log_high"] for s in steps]}}
        return out


# ------------------------------------------------------------------------------------------------- capture

def capture_spectra(model, *, num_images: int, num_steps: int, seed: int, num_classes: int, resolution: int,
                    batch_size: int, device: torch.device | str = "cpu", timeshift: float = 1.0,
                    null_label: int | None = None, cut: int = HIGH_FREQ_CUT,
                    accumulator: SpectrumAccumulator | None = None) -> dict:
    """Euler-sample `num_images` class-balanced images (no CFG, as Tables 1/4) and accumulate the DCT energy of the
    DiT output ("dit_out") and of the predicted velocity ("velocity") at every step.

    Image i uses the same noise and label as in the sample stage (seed, i), so the analysis sees the run's own
    trajectories. Returns {"num_images", "num_steps", "times", "cut", "tensors": accumulator.summary(cut)}.
    """

    if num_images < 1 or batch_size < 1:
        raise ValueError(f"num_images and batch_size must be >= 1, got {num_images}, {batch_size}")
    acc = accumulator if accumulator is not None else SpectrumAccumulator(num_steps)
    null = model.num_classes if null_label is None else null_label
    in_ch = getattr(model, "in_channels", 3)

    def on_step(i: int, t: float, x_t: torch.Tensor, v: torch.Tensor, feats: torch.Tensor) -> None:
        acc.add("dit_out", i, feats, t)
        acc.add("velocity", i, v, t)

    for start in range(0, num_images, batch_size):
        idx = torch.arange(start, min(num_images, start + batch_size))
        noise = sample_noise(seed, idx, (in_ch, resolution, resolution)).to(device)
        labels = class_balanced_labels(idx, num_classes).to(device)
        euler_sample(model, noise, labels, num_steps=num_steps, timeshift=timeshift, null_label=null,
                     capture=on_step, capture_features=True)
    return {"num_images": num_images, "num_steps": num_steps, "times": acc.times, "cut": cut,
            "tensors": acc.summary(cut)}


# ------------------------------------------------------------------------------------------------- Fig. 4 plot

# (model, tensor) -> (legend, colour, dash pattern): DiT outputs solid, velocities dotted (DeCo) / dashed
# (baseline), as paper Fig. 4(a).
__all__ = ["NUM_COEFFS", "HIGH_FREQ_CUT", "TENSORS", "zigzag_energy", "normalise_log_energy",
           "high_frequency_share", "curve_summary", "SpectrumAccumulator", "capture_spectra"]
