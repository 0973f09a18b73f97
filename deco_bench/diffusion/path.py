"""The flow path: the one place that says which end of t is data.

Convention of the official code (`LinearScheduler`, docs/paper.md §5.1), used everywhere in deco-bench:

    t = 0 is pure noise, t = 1 is data;   x_t = t * x + (1 - t) * eps;   v = dx_t/dt = x - eps.

The paper writes the opposite direction (t = 1 noise, v = x1 - x0); that is the same path with t -> 1 - t and v -> -v.
We follow the code because it produced the released checkpoints. Loss, sampler and training loop import from here.
"""

from __future__ import annotations

import torch


def _per_sample(t: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar or (B,) time to x's shape (B, 1, 1, ...)."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.dim() == 0:
        return t
    if t.dim() != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(f"t must be a scalar or shape ({like.shape[0]},), got {tuple(t.shape)}")
    return t.view(-1, *([1] * (like.dim() - 1)))


def interpolate(x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """x_t = t * x + (1 - t) * eps (t = 1 is data)."""
    if x.shape != eps.shape:
        raise ValueError(f"x and eps shapes differ: {tuple(x.shape)} vs {tuple(eps.shape)}")
    tb = _per_sample(t, x)
    return tb * x + (1 - tb) * eps


def velocity(x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Target velocity v = d x_t / dt = x - eps (constant along the straight path)."""
    if x.shape != eps.shape:
        raise ValueError(f"x and eps shapes differ: {tuple(x.shape)} vs {tuple(eps.shape)}")
    return x - eps


def time_shift(t: torch.Tensor | float, shift: float) -> torch.Tensor | float:
    """Resolution time shift t / (t + (1 - t) * shift); shift = 1 is the identity, shift > 1 spends more time near
    noise (official `time_shift_fn` / `shift_respace_fn`)."""
    if shift <= 0:
        raise ValueError(f"time shift must be > 0, got {shift}")
    return t / (t + (1 - t) * shift)


def sample_t(batch: int, generator: torch.Generator | None = None, lognorm: bool = True, shift: float = 1.0,
             device: torch.device | str | None = None) -> torch.Tensor:
    """Training times, float32 (batch,). lognorm: logit(t) ~ N(0, 1), i.e. t = sigmoid(randn) (paper Table 5,
    official `lognorm_t`); else uniform. Then `time_shift`. Drawn on the generator's device, moved to `device`."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    draw_device = generator.device if generator is not None else device
    if lognorm:
        t = torch.randn(batch, generator=generator, device=draw_device, dtype=torch.float32).sigmoid()
    else:
        t = torch.rand(batch, generator=generator, device=draw_device, dtype=torch.float32)
    return time_shift(t, shift).to(device if device is not None else t.device)


def drop_labels(y: torch.Tensor, p: float, null_label: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """CFG label dropout: each label becomes `null_label` with probability p (official `null_condition_p`,
    0.1 default, 0.2 for DeCo-XL; docs/paper.md §5.1). The null class is `num_classes`, one past the last real class."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"label dropout probability must be in [0, 1], got {p}")
    if p == 0.0:
        return y
    draw_device = generator.device if generator is not None else y.device
    drop = (torch.rand(y.shape[0], generator=generator, device=draw_device) < p).to(y.device)
    return torch.where(drop, torch.full_like(y, null_label), y)
