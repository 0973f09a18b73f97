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


# x-prediction (JiT): the network outputs the clean image and v = (x_pred - x_t) / max(1 - t, X_PRED_MIN_GAP), in
# training (official `training_repa_JiT.py`, t_eps = 0.05) and in sampling (official `EulerSamplerJiT`). The floor
# keeps the division finite at the data end, t -> 1.
X_PRED_MIN_GAP = 0.05


def velocity_from_x(x_pred: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """v of an x-prediction at (x_t, t): (x_pred - x_t) / max(1 - t, 0.05). Exact for t <= 0.95, where
    x - x_t = (1 - t)(x - eps); above it the velocity is scaled down by (1 - t) / 0.05, as the official code does."""
    if x_pred.shape != x_t.shape:
        raise ValueError(f"x_pred and x_t shapes differ: {tuple(x_pred.shape)} vs {tuple(x_t.shape)}")
    gap = (1 - _per_sample(t, x_t)).clamp_min(X_PRED_MIN_GAP)
    return (x_pred - x_t) / gap


def as_velocity(out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | float, prediction: str) -> torch.Tensor:
    """A network's output as a velocity: itself for prediction 'v', `velocity_from_x` for 'x' (JiT)."""
    if prediction == "v":
        return out
    if prediction == "x":
        return velocity_from_x(out, x_t, t)
    raise ValueError(f"unknown prediction {prediction!r}; accepted: 'v', 'x'")


def target_velocity(x: torch.Tensor, eps: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | float,
                    prediction: str) -> torch.Tensor:
    """The flow-matching target. 'v': x - eps. 'x' (JiT): the clean image through the same conversion as the
    prediction, velocity_from_x(x, x_t, t), so the loss is the official JiT loss mean((v_pred - v_target)^2)."""
    if prediction == "x":
        return velocity_from_x(x, x_t, t)
    if prediction != "v":
        raise ValueError(f"unknown prediction {prediction!r}; accepted: 'v', 'x'")
    return velocity(x, eps)


def prediction_of(model) -> str:
    """What `model(x_t, t, y)` returns: its `prediction` attribute ('v' or 'x'); 'v' for a model without one (a
    plain velocity function, or a module that already converts, like load_official's JiT wrapper)."""
    return getattr(model, "prediction", "v")


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
