"""Sampling that does not wait on kernel launches: each Euler or Heun step captured once as a CUDA graph.

At batch 1 an XL model's step is thousands of small kernels, and the GPU waits for the CPU to launch them: a
guided step (two rows) costs what an unguided one does (bench/recordings/README.md). `StepGraphs` records one
step -- the guided one and the unguided one, Euler or Heun -- per batch-size bucket the first time it is needed,
and then replays it with one launch. A batch is padded up to its bucket (1, 2, 4, ..., 256; rows are independent
through the model, so padding rows change nothing in the others) and the padding dropped from the result.

The steps are the samplers' own (sampler.euler_sample / heun_sample): the same guidance test (lo < t <= hi, in
t's dtype), the unconditional half only where guidance is active, the same update. Without CUDA, or where a
capture fails, the same step functions run eagerly and the result is exactly the sampler's
(tests/diffusion/test_graphs.py); `fallback_reason` says why no graph is used. Capture records the autocast
state of the caller (bf16 under autocast, as the official sampler runs), so it is part of the graph's key.
"""

from __future__ import annotations

from typing import Callable

import torch

from deco_bench.diffusion.sampler import _guided_velocity, sampling_times

BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
WARMUP_CALLS = 2  # eager calls on a side stream before capture: fill the model's caches, compile, pick kernels


def bucket(batch: int) -> int:
    """The smallest bucket holding `batch` rows (a batch above the largest is its own bucket)."""
    return next((b for b in BUCKETS if b >= batch), batch)


def euler_step(model, x, t, t_next, labels, null_labels, cfg_scale: float, guided: bool) -> torch.Tensor:
    v, _ = _guided_velocity(model, x, t, labels, null_labels, cfg_scale, guided, False)
    return x + v.to(x.dtype) * (t_next - t)


def heun_step(model, x, t, t_next, labels, null_labels, cfg_scale: float, guided: bool) -> torch.Tensor:
    """Predictor at t, corrector at t_next, guided or not by the start time t (as heun_sample)."""
    dt = t_next - t
    v, _ = _guided_velocity(model, x, t, labels, null_labels, cfg_scale, guided, False)
    v = v.to(x.dtype)
    x_pred = x + v * dt
    v_next, _ = _guided_velocity(model, x_pred, t_next, labels, null_labels, cfg_scale, guided, False)
    return x + (v + v_next.to(x.dtype)) / 2 * dt


class StepGraphs:
    """Captured sampling steps of one model (which must not change while this object is used)."""

    def __init__(self, model: Callable, *, enabled: bool = True):
        self.model = model
        self.enabled = enabled
        self.fallback_reason: str | None = None if enabled else "CUDA graphs disabled by the caller"
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, dict]] = {}
        self._buffers: dict[tuple, dict] = {}
        self._pool = None

    @property
    def captured(self) -> int:
        return len(self._graphs)

    @torch.no_grad()
    def sample(self, solver: str, noise: torch.Tensor, labels: torch.Tensor, *, num_steps: int,
               cfg_scale: float = 1.0, guidance_interval: tuple[float, float] = (0.0, 1.0), timeshift: float = 1.0,
               null_label: int) -> torch.Tensor:
        """What `euler_sample` (solver 'euler') or `heun_sample` ('heun') returns, step by step from graphs."""
        if solver not in ("euler", "heun"):
            raise ValueError(f"solver must be 'euler' or 'heun', got {solver!r}")
        lo, hi = guidance_interval
        times_host = sampling_times(num_steps, timeshift).to(noise.dtype)  # the guidance test, without a device read
        times = times_host.to(noise.device)
        null_labels = torch.full_like(labels, null_label)
        use_graphs = self._usable(noise)
        x = noise
        for i in range(num_steps):
            guided = cfg_scale != 1.0 and bool((times_host[i] > lo) & (times_host[i] <= hi))  # as the samplers
            kind = "heun" if solver == "heun" and i < num_steps - 1 else "euler"  # Heun's last step is Euler's
            step = heun_step if kind == "heun" else euler_step
            if use_graphs:
                x = self._replay(kind, step, x, times[i], times[i + 1], labels, null_label, cfg_scale, guided)
            else:
                x = step(self.model, x, times[i], times[i + 1], labels, null_labels, cfg_scale, guided)
        return x[: noise.shape[0]].clone() if use_graphs else x

    # ---------------------------------------------------------------------------------------------- capture

    def _usable(self, noise: torch.Tensor) -> bool:
        if self.enabled and noise.device.type != "cuda":
            self.fallback_reason = f"no CUDA graphs on {noise.device.type}: the steps run eagerly"
            return False
        return self.enabled

    def _buffers_for(self, x: torch.Tensor, labels: torch.Tensor, null_label: int, t: torch.Tensor) -> dict:
        """Static inputs of the graphs of one bucket: x (its result is written back here), labels, t, t_next."""
        b = bucket(x.shape[0])
        key = (b, tuple(x.shape[1:]), x.dtype, t.dtype, str(x.device), null_label)
        if key not in self._buffers:
            self._buffers[key] = {"x": x.new_zeros((b, *x.shape[1:])), "labels": labels.new_zeros(b),
                                  "null": labels.new_full((b,), null_label), "t": t.new_zeros(()),
                                  "t_next": t.new_zeros(())}
        return self._buffers[key]

    def _replay(self, kind, step, x, t, t_next, labels, null_label, cfg_scale, guided) -> torch.Tensor:
        buf = self._buffers_for(x, labels, null_label, t)
        n = x.shape[0]
        if x.data_ptr() != buf["x"].data_ptr():  # first step: the caller's noise and labels into the buffers
            buf["x"][:n].copy_(x)
            buf["labels"][:n].copy_(labels)
        buf["t"].copy_(t)
        buf["t_next"].copy_(t_next)
        autocast = torch.get_autocast_dtype("cuda") if torch.is_autocast_enabled("cuda") else None
        key = (kind, buf["x"].shape, buf["x"].dtype, guided, cfg_scale if guided else None, autocast)
        if key not in self._graphs:
            try:
                self._graphs[key] = (self._capture(step, buf, cfg_scale, guided), buf)
            except RuntimeError as e:  # e.g. a model that reads a value back inside its forward
                self.fallback_reason = f"CUDA graph capture failed ({str(e).splitlines()[0]}): the steps run eagerly"
                self.enabled = False
                out = step(self.model, buf["x"], buf["t"], buf["t_next"], buf["labels"], buf["null"], cfg_scale,
                           guided)
                buf["x"].copy_(out)
                return buf["x"]
        self._graphs[key][0].replay()
        return buf["x"]

    def _capture(self, step, buf: dict, cfg_scale: float, guided: bool) -> torch.cuda.CUDAGraph:
        """Warm up on a side stream (the step returns a new tensor: x is not advanced), then record one step that
        writes its result back into the x buffer (recording runs nothing)."""
        def run() -> torch.Tensor:
            return step(self.model, buf["x"], buf["t"], buf["t_next"], buf["labels"], buf["null"], cfg_scale, guided)

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                run()
        torch.cuda.current_stream().wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            buf["x"].copy_(run())
        return graph


__all__ = ["BUCKETS", "WARMUP_CALLS", "bucket", "euler_step", "heun_step", "StepGraphs"]
