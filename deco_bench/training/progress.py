"""A training run's progress as DVC reads it: a small numbers-only summary (DVC metrics) and the loss curve (a DVC
plot), rewritten while the run trains so that `dvc exp show`, `dvc metrics show` and `dvc plots show` follow a
running experiment, and written once more, complete, when it ends.

Both are pure functions of the log records (runs/<m>/train_log.jsonl), so a resumed run ends with the same curve
and summary as an uninterrupted one, the wall-clock fields aside.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from deco_bench.io import atomic_write_json, atomic_write_metrics

CURVE_KEYS = ("step", "loss", "fm", "freqfm", "repa", "images_per_s", "elapsed_s")
LIVE_CURVE_BUDGET = 0.01  # the live curve's rewrites take at most this share of the training time


def curve_rows(log: list[dict]) -> list[dict]:
    """The loss curve: one row per logged step, with the keys of CURVE_KEYS the record has."""
    return [{k: r[k] for k in CURVE_KEYS if k in r} for r in log]


def summary(log: list[dict], params_m: float) -> dict[str, float]:
    """Numbers only, flat, for DVC: `steps` (the last logged step), `loss` (its loss), `images_per_s` (median over
    the logged steps, the first one left out: it pays for warm-up), `wall_s` (training time so far), `params_m`.
    A value that does not exist yet is left out, never written as null."""
    out: dict[str, float] = {}
    if log:
        last = log[-1]
        speeds = [float(r["images_per_s"]) for r in (log[1:] or log) if "images_per_s" in r]
        out = {"steps": int(last["step"]), **({"loss": float(last["loss"])} if "loss" in last else {}),
               **({"images_per_s": statistics.median(speeds)} if speeds else {}),
               **({"wall_s": float(last["elapsed_s"])} if "elapsed_s" in last else {})}
    out["params_m"] = float(params_m)
    return out


class LiveProgress:
    """The training loop's `on_log`: rewrites the summary at every logged step (well under a millisecond of JSON)
    and the curve whenever the rewrite costs at most LIVE_CURVE_BUDGET of the time since the previous one (every
    logged step for short curves; a long run's curve of tens of thousands of rows at most every few tens of
    seconds). `write_final` writes both, complete, at the end."""

    def __init__(self, summary_path: Path, curve_path: Path, params_m: float, budget: float = LIVE_CURVE_BUDGET):
        self.summary_path, self.curve_path, self.params_m, self.budget = summary_path, curve_path, params_m, budget
        self._curve_done: float | None = None  # perf_counter when the curve was last written
        self._curve_cost = 0.0

    def __call__(self, log: list[dict]) -> None:
        atomic_write_metrics(self.summary_path, summary(log, self.params_m))
        start = time.perf_counter()
        if self._curve_done is None or self._curve_cost <= self.budget * (start - self._curve_done):
            atomic_write_json(self.curve_path, curve_rows(log))
            self._curve_done = time.perf_counter()
            self._curve_cost = self._curve_done - start

    def write_final(self, log: list[dict], steps: int) -> None:
        """The complete curve and the summary of the finished run (`steps`: the step of its final weights)."""
        atomic_write_json(self.curve_path, curve_rows(log))
        atomic_write_metrics(self.summary_path, {**summary(log, self.params_m), "steps": int(steps)})
