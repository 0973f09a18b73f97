"""FLOPs counted by running the model under PyTorch's FLOP counter, and MFU against a documented peak.

Counting: `torch.utils.flop_counter.FlopCounterMode` on the meta device (no memory, no compute), 2 FLOPs per
multiply-add, matmuls/convolutions/attention only (element-wise ops are not counted, as in the usual MFU
convention). The training count runs forward and backward of the denoiser; it excludes the REPA encoder and
projector, the losses and the optimiser (they are part of the measured time, so MFU is slightly conservative).

Peaks: dense (no sparsity) bf16 tensor-core rates from NVIDIA's datasheets. MFU is only reported where the
device matches an entry, or where the caller passes a measured peak with its source.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from deco_bench.models import build_model, model_flops_per_image

# Substring of torch.cuda.get_device_name() -> (dense bf16 FLOP/s, source). More specific names come first.
PEAK_BF16: list[tuple[str, float, str]] = [
    ("H200 NVL", 835e12, "NVIDIA H200 NVL datasheet: 1,671 TFLOPS bf16 with sparsity, 835 dense"),
    ("H200", 989e12, "NVIDIA H200 SXM datasheet (2024): 1,979 TFLOPS bf16 with sparsity, i.e. 989 TFLOPS dense"),
    ("GH200", 989e12, "NVIDIA GH200 datasheet: H100-class Hopper tensor cores, 989 TFLOPS bf16 dense"),
    ("H100 PCIe", 756e12, "NVIDIA H100 PCIe datasheet: 1,513 TFLOPS bf16 with sparsity, 756 dense"),
    ("H100 NVL", 835e12, "NVIDIA H100 NVL datasheet: 1,671 TFLOPS bf16 with sparsity, 835 dense"),
    ("H100", 989e12, "NVIDIA H100 SXM5 datasheet: 1,979 TFLOPS bf16 with sparsity, i.e. 989 TFLOPS dense"),
    ("H800", 989e12, "NVIDIA H800 SXM5: H100 SXM5 compute (989 TFLOPS bf16 dense)"),
    ("A100", 312e12, "NVIDIA A100 datasheet: 312 TFLOPS bf16 dense (624 with sparsity)"),
    ("A800", 312e12, "NVIDIA A800 datasheet: 312 TFLOPS bf16 dense"),
    ("L40S", 362.05e12, "NVIDIA L40S datasheet: 362.05 TFLOPS bf16 dense (733 with sparsity)"),
    ("B200", 2250e12, "NVIDIA DGX B200 / HGX B200 datasheet: 2.25 PFLOPS bf16 dense per GPU"),
]


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs of the torch ops that fn() runs (FlopCounterMode)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def _meta_model(cfg):
    with torch.device("meta"):
        return build_model(cfg)


def forward_flops_per_image(cfg, resolution: int) -> int:
    """Denoiser forward FLOPs for one image (batch 1) at `resolution`."""

    return int(model_flops_per_image(cfg, resolution))


def train_flops_per_image(cfg, resolution: int) -> int:
    """Denoiser forward + backward FLOPs for one image (weights require grad; the input does not)."""
    model = _meta_model(cfg)
    with torch.device("meta"):
        x = torch.zeros(1, cfg.in_channels, resolution, resolution)
        t = torch.zeros(1)
        y = torch.zeros(1, dtype=torch.long)

    def step() -> None:
        model(x, t, y).float().square().mean().backward()

    return count_flops(step)


# Boards sold under one name with different power and clocks. Where the name does not say which one it is, the
# maximum power limit NVML reports does (datasheets: H200 SXM 700 W, H200 NVL 600 W; H100 SXM 700 W, H100 NVL
# 400 W, H100 PCIe 350 W): (family, [(at most this many watts, variant)], smallest first).
VARIANTS_BY_POWER: list[tuple[str, list[tuple[float, str]]]] = [
    ("H200", [(650.0, "H200 NVL")]),
    ("H100", [(375.0, "H100 PCIe"), (500.0, "H100 NVL")]),
]


def identify(device_name: str, max_power_w: float | None = None) -> tuple[str, str]:
    """(the name to look the peak up by, how it was decided): the device name, or its variant by power."""
    lower = device_name.lower()
    for family, variants in VARIANTS_BY_POWER:
        if family.lower() not in lower or any(v.lower() in lower for _, v in variants):
            continue  # another family, or the name already names its variant
        if max_power_w is None:
            return device_name, "max power limit not read: the board is taken to be the one its name gives"
        for limit, variant in variants:
            if max_power_w <= limit:
                return variant, f"identified as {variant} by its NVML max power limit of {max_power_w:.0f} W"
        return device_name, f"NVML max power limit {max_power_w:.0f} W: the full-power board its name gives"
    return device_name, "identified by name"


def documented_peak(device_name: str | None, max_power_w: float | None = None) -> tuple[float | None, str]:
    """(dense bf16 FLOP/s, source) for a GPU name (and its maximum power limit, when known), or (None, reason)."""
    if not device_name:
        return None, "no documented peak: not a CUDA device"
    name, how = identify(device_name, max_power_w)
    for key, flops, source in PEAK_BF16:
        if key.lower() in name.lower():
            return flops, source if how == "identified by name" else f"{source}; {how}"
    return None, f"no documented dense bf16 peak for {device_name!r} (set bench.peak_tflops with bench.peak_source)"


def mfu(flops_per_item: float, items_per_s: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s over the peak."""
    if peak_flops_per_s <= 0:
        raise ValueError(f"peak must be > 0, got {peak_flops_per_s}")
    return flops_per_item * items_per_s / peak_flops_per_s


__all__ = ["PEAK_BF16", "VARIANTS_BY_POWER", "identify", "count_flops", "forward_flops_per_image",
           "train_flops_per_image", "documented_peak", "mfu"]
