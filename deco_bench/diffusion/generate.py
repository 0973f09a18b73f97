"""Turn a trained model into uint8 images: sample i depends only on (seed, i), whatever the batch or process count."""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

from deco_bench.diffusion.sampler import class_balanced_labels, euler_sample, heun_sample, sample_noise


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float (B,3,H,W) -> uint8 (B,H,W,3), rounding as the official code does (docs/paper.md §6:
    clip((x+1)*127.5+0.5))."""
    return ((x.float() + 1) * 127.5 + 0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


@torch.no_grad()
def generate(model: nn.Module, indices: Iterable[int], *, sp, seed: int, num_classes: int,
             resolution: int, device: torch.device, null_label: int,
             on_batch: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N,H,W,3) uint8 and labels (N,) for the given sample indices, class-balanced (label = i mod C).

    `sp` holds the sampler settings by name (the `sample:` section, config.SampleParams): sampler, batch_size,
    num_steps, cfg_scale, guidance_interval, timeshift.
    """
    indices = list(indices)
    solver = euler_sample if sp.sampler == "euler" else heun_sample
    images, labels = [], []
    for start in range(0, len(indices), sp.batch_size):
        chunk = indices[start:start + sp.batch_size]
        idx = torch.tensor(chunk, dtype=torch.long)
        noise = sample_noise(seed, idx, (3, resolution, resolution), torch.float32).to(device)
        y = class_balanced_labels(idx, num_classes).to(device)
        x = solver(model, noise, y, num_steps=sp.num_steps, cfg_scale=sp.cfg_scale,
                   guidance_interval=tuple(sp.guidance_interval), timeshift=sp.timeshift, null_label=null_label)
        images.append(to_uint8(x).cpu())
        labels.append(y.cpu())
        if on_batch is not None:
            on_batch(len(chunk))
    return torch.cat(images), torch.cat(labels)
