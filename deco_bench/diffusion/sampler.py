"""ODE samplers (Euler, Heun) with interval classifier-free guidance, and per-sample seeding.

Same numbers as the official `EulerSampler` / `HeunSampler(exact_henu=True)` (`src/diffusion/flow_matching/
sampling.py`; docs/paper.md §5.1), with one change in cost, not in result: the official sampler always runs the
unconditional half of the batch, even where guidance has no effect (w = 1, or t outside the guidance interval),
so its "NFE x2" holds for no-CFG runs too (docs/paper.md §3.4). We evaluate only the conditional rows there; the output
then equals `c` instead of `u + 1 * (c - u)`, i.e. the same up to float rounding.

Model contract: `model(x_t, t, y) -> v` with x_t (B, C, H, W), t (B,) in [0, 1] (t = 1 is data, see path.py), y (B,)
class labels (the null class for unconditional rows). A model whose `prediction` attribute is 'x' (JiT) returns the
clean image instead; the samplers convert every output to v with `path.velocity_from_x` before guidance, as the
official `EulerSamplerJiT` does, so an x-model is never integrated as if it predicted v. With
`capture_features=True` the model must also provide `model.forward_features(x_t, t, y) -> (v, features)`, e.g. the
DiT output map that Fig. 4 analyses (official `forward_sx`).

Autocast is left to the caller (the official sampler runs under bf16 autocast); x is kept in the noise dtype.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Iterable, Protocol

import torch

from deco_bench.diffusion.path import as_velocity, prediction_of, time_shift

# capture(step_index, t, x_t, v) or, with capture_features=True, capture(step_index, t, x_t, v, features)
Capture = Callable[..., None]


class VelocityModel(Protocol):
    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...


def sampling_times(num_steps: int, timeshift: float = 1.0) -> torch.Tensor:
    """num_steps + 1 times from noise (0) to data (1): linspace(0, 1 - 1/N, N) with 1.0 appended, then time-shifted
    (official; float32 so that t is bit-identical to the reference)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    t = torch.linspace(0.0, 1.0 - 1.0 / num_steps, num_steps, dtype=torch.float32)
    return time_shift(torch.cat([t, torch.ones(1)]), timeshift)


def _guided_velocity(model, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, null_labels: torch.Tensor,
                     cfg_scale: float, guided: bool, want_features: bool):
    """One model evaluation with CFG u + w (c - u) on velocities (an x-prediction is converted first, official
    `EulerSamplerJiT`); returns (v, features of the conditional rows or None)."""
    t_rows = t.expand(x.shape[0])
    forward = model.forward_features if want_features else model
    prediction = prediction_of(model)
    if not guided:
        out, feats = forward(x, t_rows, labels) if want_features else (forward(x, t_rows, labels), None)
        return as_velocity(out, x, t_rows, prediction), feats
    x_both, t_both = torch.cat([x, x]), t_rows.repeat(2)
    out = forward(x_both, t_both, torch.cat([null_labels, labels]))
    out_both, feats = out if want_features else (out, None)
    v_uncond, v_cond = as_velocity(out_both, x_both, t_both, prediction).chunk(2)
    if feats is not None:
        feats = feats.chunk(2)[1]
    return v_uncond + cfg_scale * (v_cond - v_uncond), feats


def _check_args(noise: torch.Tensor, labels: torch.Tensor, guidance_interval: tuple[float, float],
                capture: Capture | None, capture_features: bool, model) -> None:
    if labels.shape != (noise.shape[0],):
        raise ValueError(f"labels must have shape ({noise.shape[0]},), got {tuple(labels.shape)}")
    lo, hi = guidance_interval
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"guidance_interval must satisfy 0 <= lo <= hi <= 1, got {guidance_interval}")
    if capture_features and (capture is None or not hasattr(model, "forward_features")):
        raise ValueError("capture_features=True needs a capture callable and a model with forward_features")


@torch.no_grad()
def euler_sample(model: VelocityModel, noise: torch.Tensor, labels: torch.Tensor, *, num_steps: int,
                 cfg_scale: float = 1.0, guidance_interval: tuple[float, float] = (0.0, 1.0), timeshift: float = 1.0,
                 null_label: int, capture: Capture | None = None, capture_features: bool = False) -> torch.Tensor:
    """Euler ODE sampling from noise (t = 0) to data (t = 1). Returns the final x, unclipped, in noise's dtype.

    Guidance w = cfg_scale is applied at step time t when lo < t <= hi (official interval test); elsewhere, and
    whenever w == 1, only the conditional rows are evaluated. `capture(i, t, x_t, v)` sees the state and the
    velocity of step i before the update (plus the conditional rows' features with capture_features=True).
    """
    _check_args(noise, labels, guidance_interval, capture, capture_features, model)
    lo, hi = guidance_interval
    times = sampling_times(num_steps, timeshift).to(noise.device, noise.dtype)
    null_labels = torch.full_like(labels, null_label)
    x = noise
    for i in range(num_steps):
        t, t_next = times[i], times[i + 1]
        guided = cfg_scale != 1.0 and bool((t > lo) & (t <= hi))  # compared in t's dtype, as official
        v, feats = _guided_velocity(model, x, t, labels, null_labels, cfg_scale, guided, capture_features)
        if capture is not None:
            capture(i, t.item(), x, v, *((feats,) if capture_features else ()))
        x = x + v.to(x.dtype) * (t_next - t)
    return x


@torch.no_grad()
def heun_sample(model: VelocityModel, noise: torch.Tensor, labels: torch.Tensor, *, num_steps: int,
                cfg_scale: float = 1.0, guidance_interval: tuple[float, float] = (0.0, 1.0), timeshift: float = 1.0,
                null_label: int, capture: Capture | None = None, capture_features: bool = False) -> torch.Tensor:
    """Heun (2nd-order) ODE sampling, as the official `HeunSampler(exact_henu=True)`: predictor at t, corrector at
    t_next, step with the mean velocity; the last step (into t = 1) is plain Euler. 2N - 1 evaluations.

    For parity, guidance at the corrector is switched by the step's start time t, as the official code does.
    `capture(i, t, x_t, v)` gets the averaged velocity actually used for the update (features: the predictor's).
    """
    _check_args(noise, labels, guidance_interval, capture, capture_features, model)
    lo, hi = guidance_interval
    times = sampling_times(num_steps, timeshift).to(noise.device, noise.dtype)
    null_labels = torch.full_like(labels, null_label)
    x = noise
    for i in range(num_steps):
        t, t_next = times[i], times[i + 1]
        dt = t_next - t
        guided = cfg_scale != 1.0 and bool((t > lo) & (t <= hi))  # compared in t's dtype, as official
        v, feats = _guided_velocity(model, x, t, labels, null_labels, cfg_scale, guided, capture_features)
        v = v.to(x.dtype)
        if i < num_steps - 1:
            x_pred = x + v * dt
            v_next, _ = _guided_velocity(model, x_pred, t_next, labels, null_labels, cfg_scale, guided, False)
            v = (v + v_next.to(x.dtype)) / 2
        if capture is not None:
            capture(i, t.item(), x, v, *((feats,) if capture_features else ()))
        x = x + v * dt
    return x


# ------------------------------------------------------------------------------------------- per-sample seeds

def sample_seed(seed: int, index: int) -> int:
    """63-bit seed of sample `index`: the first 8 bytes of sha256("deco-bench/noise/{seed}/{index}").

    A hash rather than seed * K + index, so that no two (seed, index) pairs share a stream.
    """
    digest = hashlib.sha256(f"deco-bench/noise/{int(seed)}/{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def sample_noise(seed: int, indices: Iterable[int] | torch.Tensor, shape: tuple[int, ...],
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """Initial noise (len(indices), *shape): row k is drawn from its own CPU generator seeded by
    `sample_seed(seed, indices[k])`, in float32, then cast and moved. Sample i is therefore the same at any batch
    size, process count or device (the official sampler draws a random seed per sample: not reproducible)."""
    idx = indices.tolist() if isinstance(indices, torch.Tensor) else list(indices)
    if not idx:
        raise ValueError("sample_noise needs at least one index")
    rows = []
    for i in idx:
        if i < 0:
            raise ValueError(f"sample indices must be >= 0, got {i}")
        g = torch.Generator().manual_seed(sample_seed(seed, i))
        rows.append(torch.randn(shape, generator=g, dtype=torch.float32))
    return torch.stack(rows).to(device=device, dtype=dtype)


def class_balanced_labels(indices: Iterable[int] | torch.Tensor, num_classes: int) -> torch.Tensor:
    """Label of sample i = i % num_classes: 50 images per class for 50,000 samples (docs/paper.md §6)."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    idx = torch.as_tensor(indices.tolist() if isinstance(indices, torch.Tensor) else list(indices), dtype=torch.long)
    return idx % num_classes
