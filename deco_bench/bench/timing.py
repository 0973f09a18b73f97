"""Timing done the way nanoGPT's bench.py does it: warm up, synchronise, measure steady state, repeat.

On CUDA each repeat is bracketed by CUDA events recorded on the current stream, after a device synchronise so
that no earlier queued work is counted; the end event is waited on before reading it. On CPU the wall clock
(`time.perf_counter`) is used. The result keeps every repeat plus median, quartiles, min and max.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class TimingStats:
    times_s: tuple[float, ...]
    warmup: int
    timer: str  # "cuda_events" | "perf_counter"

    @property
    def repeats(self) -> int:
        return len(self.times_s)

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)


def spread(values: list[float] | tuple[float, ...]) -> dict:
    """median, quartiles (inclusive method; equal to min/max below 3 values), min and max."""
    v = sorted(float(x) for x in values)
    if not v:
        raise ValueError("spread() needs at least one value")
    q1, q3 = (statistics.quantiles(v, n=4, method="inclusive")[::2] if len(v) >= 2 else (v[0], v[0]))
    return {"median": statistics.median(v), "q1": q1, "q3": q3, "min": v[0], "max": v[-1], "n": len(v)}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], object], *, warmup: int, repeats: int, device: torch.device,
            before_measure: Callable[[], object] | None = None) -> TimingStats:
    """Run fn `warmup` times untimed, then `repeats` times, each timed on its own. `before_measure` runs between
    the two (e.g. to start a telemetry sampler on the measured region only)."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    synchronize(device)
    if before_measure is not None:
        before_measure()
    times = []
    if device.type == "cuda":
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000.0)  # elapsed_time is in milliseconds
        return TimingStats(tuple(times), warmup, "cuda_events")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return TimingStats(tuple(times), warmup, "perf_counter")


def rate_spread(times: TimingStats | dict, items: float) -> dict:
    """items per second: `items` over the time statistics (the median rate is items / median time; the rate
    quartiles are items over the time quartiles), so rates and times always describe the same repeats."""
    s = spread(times.times_s) if isinstance(times, TimingStats) else times
    return {"median": items / s["median"], "q1": items / s["q3"], "q3": items / s["q1"], "min": items / s["max"],
            "max": items / s["min"], "n": s["n"]}


__all__ = ["TimingStats", "spread", "synchronize", "time_fn", "rate_spread"]
