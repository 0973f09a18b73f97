"""Convergence speed (paper Fig. 5): how many training iterations DeCo needs to match the baseline.

The paper's claim [docs/paper.md §3.3]: "DeCo reaches 2.57 FID in 400K iterations, 10x faster than the baseline" (whose
FID is 2.59 at 4.0M). We make that a number with an interval:

    target value   the baseline's best (or final) metric on its curve of evaluation checkpoints;
    steps to reach the first step at which a curve reaches the target, by linear interpolation between the two
                   checkpoints that bracket the first crossing (lower is better unless told otherwise);
    speed-up       baseline steps to reach / DeCo steps to reach (the same for wall-clock seconds and images seen,
                   mapped from steps through each run's training log).

Reaching the target at the first checkpoint gives only an upper bound on the steps (nothing was measured before
it), so the speed-up is then a bound, and is labelled so. The interval comes from a bootstrap over the generated
samples: replicate b of every checkpoint's metric resamples the same sample indices (deco_bench.metrics.bootstrap
seeds by (seed, n) only), and sample i has the same noise at every checkpoint and in both models, so replicate b is
one coherent pair of curves. Its target, crossings and speed-up are recomputed per replicate; the interval is the
percentile interval of those speed-ups, where a replicate in which DeCo never reaches the target ranks below every
finite speed-up (and an interval end landing there is reported as None: no bound).

Pure maths; the stage (deco_bench/stages/convergence.py) does the sampling, the evaluation and the files. The
`convergence:` section of params.yaml is validated here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from deco_bench.config import ConvergenceParams
from deco_bench.metrics.api import EMBED_NAMES, INCEPTION_NAMES
from deco_bench.metrics.bootstrap import CI_LEVEL
from deco_bench.paper import FIG5

EXACT, LOWER_BOUND, UPPER_BOUND, INDETERMINATE = "interpolated", "lower_bound", "upper_bound", "indeterminate"


# ------------------------------------------------------------------------------------------------ parameters


def resolve_metric(conv: ConvergenceParams, feature_space: str) -> str:
    if conv.metric != "auto":
        return conv.metric
    return (EMBED_NAMES if feature_space == "embed" else INCEPTION_NAMES).fd


# ------------------------------------------------------------------------------------------------ crossings


def steps_to_reach(steps: Sequence[float], values: Sequence[float], target: float, *,
                   lower_is_better: bool = True) -> float | None:
    """The first step at which the curve reaches `target`, linearly interpolated; None when it never does.

    Reached at the first checkpoint: returns that step (an upper bound; nothing was measured before it).
    """
    s, v = _curve(steps, values)
    sign = 1.0 if lower_is_better else -1.0
    reached = np.nonzero(sign * v <= sign * target)[0]
    if reached.size == 0:
        return None
    i = int(reached[0])
    if i == 0:
        return float(s[0])
    # v[i-1] is strictly worse than the target and v[i] at least as good: the crossing lies in (s[i-1], s[i]].
    frac = (v[i - 1] - target) / (v[i - 1] - v[i])
    return float(s[i - 1] + frac * (s[i] - s[i - 1]))


def _curve(steps: Sequence[float], values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    s, v = np.asarray(steps, np.float64), np.asarray(values, np.float64)
    if s.ndim != 1 or s.shape != v.shape or s.size == 0:
        raise ValueError(f"a curve needs equal-length, non-empty 1-D steps and values; got {s.shape} and {v.shape}")
    if np.any(np.diff(s) <= 0):
        raise ValueError(f"curve steps must be strictly increasing; got {s.tolist()}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"curve values must be finite; got {v.tolist()}")
    return s, v


def target_value(values: Sequence[float], target: str, *, lower_is_better: bool = True) -> float:
    v = np.asarray(values, np.float64)
    if target == "final":
        return float(v[-1])
    if target == "best":
        return float(v.min() if lower_is_better else v.max())
    raise ValueError(f"target must be 'best' or 'final', got {target!r}")


# ------------------------------------------------------------------------------------------------ speed-up


@dataclass(frozen=True)
class Curve:
    steps: Sequence[float]
    values: Sequence[float]


@dataclass(frozen=True)
class SpeedupResult:
    target: str                  # "best" | "final"
    target_value: float          # the baseline's value DeCo must reach
    baseline_steps: float        # first step at which the baseline reaches it
    deco_steps: float | None     # first step at which DeCo reaches it (None: never, within its checkpoints)
    speedup: float | None        # baseline_steps / deco_steps
    kind: str                    # interpolated | lower_bound | upper_bound | indeterminate (see `_kind`)
    deco_best: float             # DeCo's best value on its curve
    baseline_reaches_deco_best: bool  # False: the baseline never gets as good as DeCo's best


def speedup(baseline: Curve, deco: Curve, target: str = "best", *, lower_is_better: bool = True) -> SpeedupResult:
    """Speed-up of `deco` over `baseline` in iterations to reach the baseline's best/final value."""
    tv = target_value(baseline.values, target, lower_is_better=lower_is_better)
    b = steps_to_reach(baseline.steps, baseline.values, tv, lower_is_better=lower_is_better)
    assert b is not None  # the baseline reaches its own best/final value by construction
    d = steps_to_reach(deco.steps, deco.values, tv, lower_is_better=lower_is_better)
    deco_best = target_value(deco.values, "best", lower_is_better=lower_is_better)
    return SpeedupResult(
        target=target, target_value=tv, baseline_steps=b, deco_steps=d, speedup=None if d is None else b / d,
        kind=_kind(b, d, baseline.steps[0], deco.steps[0]), deco_best=deco_best,
        baseline_reaches_deco_best=steps_to_reach(baseline.steps, baseline.values, deco_best,
                                                  lower_is_better=lower_is_better) is not None)


def _kind(b: float, d: float | None, b_first: float, d_first: float) -> str:
    """A crossing at a curve's first checkpoint is only an upper bound on its steps, which bounds the ratio."""
    if d is None:
        return INDETERMINATE
    d_bound, b_bound = d == d_first, b == b_first
    if d_bound and b_bound:
        return INDETERMINATE
    return LOWER_BOUND if d_bound else UPPER_BOUND if b_bound else EXACT


def axis_at(step: float | None, log_steps: Sequence[float], log_values: Sequence[float]) -> float | None:
    """A training-log quantity (elapsed_s, images_seen) at a fractional step, by linear interpolation.

    The log starts after the first logged step; (0, 0) is prepended (no time spent, no image seen at step 0).
    """
    if step is None or len(log_steps) == 0:
        return None
    s = np.concatenate([[0.0], np.asarray(log_steps, np.float64)])
    v = np.concatenate([[0.0], np.asarray(log_values, np.float64)])
    if step > s[-1]:
        return None  # the log does not reach this step: no extrapolation
    return float(np.interp(step, s, v))


def ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or den is None or den <= 0 else num / den


# ------------------------------------------------------------------------------------------------ bootstrap


@dataclass(frozen=True)
class BootstrapSpeedup:
    speedups: list               # per replicate; None where DeCo never reaches that replicate's target
    interval: tuple              # (lo, hi) percentile interval; an end is None where it falls on "never reached"
    fraction_reached: float      # replicates in which DeCo reaches the target


def bootstrap_speedup(baseline_steps: Sequence[float], baseline_reps: np.ndarray, deco_steps: Sequence[float],
                      deco_reps: np.ndarray, target: str = "best", *, lower_is_better: bool = True,
                      baseline_axis=None, deco_axis=None, level: float = CI_LEVEL) -> BootstrapSpeedup:
    """Speed-up per bootstrap replicate; `*_reps` are (checkpoints, replicates) arrays of the metric.

    Replicate b pairs column b of both arrays (same resampled sample indices, see the module docstring).
    `*_axis` (optional) maps a step to another axis (elapsed_s, images_seen) before taking the ratio.
    """
    br, dr = np.asarray(baseline_reps, np.float64), np.asarray(deco_reps, np.float64)
    if br.ndim != 2 or dr.ndim != 2 or br.shape[0] != len(baseline_steps) or dr.shape[0] != len(deco_steps):
        raise ValueError(f"replicates must be (checkpoints, replicates); got {br.shape} for {len(baseline_steps)} "
                         f"baseline and {dr.shape} for {len(deco_steps)} DeCo checkpoints")
    if br.shape[1] != dr.shape[1] or br.shape[1] == 0:
        raise ValueError(f"both models need the same, non-zero number of replicates; got {br.shape[1]} and "
                         f"{dr.shape[1]}")
    b_map, d_map = baseline_axis or (lambda s: s), deco_axis or (lambda s: s)
    out = []
    for b in range(br.shape[1]):
        r = speedup(Curve(baseline_steps, br[:, b]), Curve(deco_steps, dr[:, b]), target,
                    lower_is_better=lower_is_better)
        out.append(ratio(b_map(r.baseline_steps), d_map(r.deco_steps)) if r.deco_steps is not None else None)
    return BootstrapSpeedup(speedups=out, interval=percentile_with_never(out, level),
                            fraction_reached=sum(v is not None for v in out) / len(out))


def percentile_with_never(values: Sequence[float | None], level: float = CI_LEVEL) -> tuple:
    """Percentile interval where None ("never reached") ranks below every number; an end on None is None.

    Order statistics k and n-1-k of the sorted values, k = ceil(n (1 - level) / 2) - 1 (no interpolation, which
    would be meaningless next to "never"; symmetric, and at least as wide as numpy's interpolated percentiles).
    """
    x = sorted(values, key=lambda v: -math.inf if v is None else v)
    k = max(0, math.ceil(len(x) * (1 - level) / 2 - 1e-9) - 1)
    return x[k], x[len(x) - 1 - k]


# ------------------------------------------------------------------------------------------------ wording


def statement(r: SpeedupResult, metric: str, *, deco_label: str = "DeCo", baseline_label: str = "the baseline",
              deco_last_step: float | None = None) -> str:
    """One plain sentence saying what the curves show (for the report and summary.json)."""
    what = f"the baseline's {r.target} {metric} ({r.target_value:.4g}, reached at step {r.baseline_steps:.0f})"
    if r.deco_steps is None:
        horizon = f" within its {deco_last_step:.0f} iterations" if deco_last_step is not None else ""
        return (f"{deco_label} never reaches {what}{horizon}: no speed-up can be stated "
                f"(its best is {r.deco_best:.4g}).")
    s = {EXACT: f"{r.speedup:.2f}x fewer iterations",
         LOWER_BOUND: f"at least {r.speedup:.2f}x fewer iterations (reached by its first checkpoint)",
         UPPER_BOUND: f"at most {r.speedup:.2f}x fewer iterations (the baseline's value is its first checkpoint's)",
         INDETERMINATE: "an undetermined speed-up (both reach it by their first checkpoint)"}[r.kind]
    sentence = f"{deco_label} reaches {what} at step {r.deco_steps:.0f}: {s}."
    if not r.baseline_reaches_deco_best:
        sentence += f" {baseline_label[:1].upper() + baseline_label[1:]} never gets as good as {deco_label}'s best " \
                    f"({r.deco_best:.4g})."
    return sentence


# ------------------------------------------------------------------------------------------------ summary


def summarise(points: Mapping[str, list], logs: Mapping[str, Mapping[str, Sequence[float]]],
              conv: ConvergenceParams, *, metric: str, lower_is_better: bool, labels: Mapping[str, str]) -> tuple:
    """curves.json rows and the summary.json object from per-checkpoint points and training logs.

    points[m]: [{"step", "value", "lo", "hi", "bootstrap": {metric: [replicates]}}] in step order;
    logs[m]: {"step", "elapsed_s", "images_seen"} lists from runs/<m>/train_log.jsonl.
    """
    deco, base = conv.deco, conv.baseline
    axis = {(m, k): (lambda s, m=m, k=k: axis_at(s, logs[m]["step"], logs[m][k]))
            for m in (deco, base) for k in ("elapsed_s", "images_seen")}
    rows = [{"model": m, "label": labels[m], "step": pt["step"], "images_seen": axis[m, "images_seen"](pt["step"]),
             "elapsed_s": axis[m, "elapsed_s"](pt["step"]), "metric": pt["value"], "lo": pt["lo"], "hi": pt["hi"]}
            for m in (deco, base) for pt in points[m]]
    steps = {m: [pt["step"] for pt in points[m]] for m in (deco, base)}
    r = speedup(Curve(steps[base], [pt["value"] for pt in points[base]]),
                Curve(steps[deco], [pt["value"] for pt in points[deco]]), conv.target, lower_is_better=lower_is_better)
    out = {"metric": metric, "lower_is_better": lower_is_better, "target": conv.target, "target_value": r.target_value,
           "baseline_steps": r.baseline_steps, "deco_steps": r.deco_steps, "speedup_iters": r.speedup, "kind": r.kind,
           "interval": None, "interval_level": CI_LEVEL, "models": {"deco": deco, "baseline": base},
           "checkpoints": {m: steps[m] for m in (deco, base)}, "num_images": conv.num_images,
           "num_steps": conv.num_steps, "reasons": {}}
    for k, name in (("elapsed_s", "wall"), ("images_seen", "images")):
        out[f"speedup_{name}"] = ratio(axis[base, k](r.baseline_steps), axis[deco, k](r.deco_steps))
        out[f"interval_{name}"] = None
        if out[f"speedup_{name}"] is None and r.speedup is not None:
            out["reasons"][f"speedup_{name}"] = "a training log is missing or does not reach the crossing step"
    reps = {m: [pt.get("bootstrap", {}).get(metric) or [] for pt in points[m]] for m in (deco, base)}
    n_reps = {len(v) for m in reps for v in reps[m]}
    if conv.bootstrap > 0 and len(n_reps) == 1 and n_reps != {0}:
        for k, name in ((None, "iters"), ("elapsed_s", "wall"), ("images_seen", "images")):
            bs = bootstrap_speedup(steps[base], np.array(reps[base]), steps[deco], np.array(reps[deco]),
                                   conv.target, lower_is_better=lower_is_better,
                                   baseline_axis=k and axis[base, k], deco_axis=k and axis[deco, k])
            out["interval" if k is None else f"interval_{name}"] = list(bs.interval)
            if k is None:
                out["fraction_reached"] = bs.fraction_reached
                if None in bs.interval:
                    out["reasons"]["interval"] = (f"{deco} does not reach the target in "
                                                  f"{100 * (1 - bs.fraction_reached):.0f}% of bootstrap replicates: an "
                                                  f"interval end that falls there has no bound (None)")
    else:
        out["reasons"]["interval"] = "no bootstrap replicates (convergence.bootstrap is 0, or counts differ)"
    if r.speedup is None:
        out["reasons"]["speedup_iters"] = f"{deco} never reaches the target within its checkpoints"
    out["statement"] = statement(r, metric, deco_label=labels[deco], baseline_label=labels[base],
                                 deco_last_step=steps[deco][-1])
    out["wall_note"] = "elapsed_s from each run's train_log.jsonl: training-loop time only, as run on this machine"
    out["paper"] = paper_speedup()
    return rows, out


def paper_speedup() -> dict:
    """Our speed-up computation applied to the paper's Fig. 5 read-offs (paper scale: ImageNet 256, XL, FID-50K)."""

    r = speedup(Curve(FIG5["iterations"], FIG5["baseline_fid"]), Curve(FIG5["iterations"], FIG5["deco_fid"]),
                "final")
    return {"points": [{"step": s, "baseline": b, "deco": d}
                       for s, b, d in zip(FIG5["iterations"], FIG5["baseline_fid"], FIG5["deco_fid"])],
            "claim": FIG5["claim"], "metric": "fid", "target": "final", "target_value": r.target_value,
            "baseline_steps": r.baseline_steps, "deco_steps": r.deco_steps, "speedup_iters": r.speedup,
            "scale": "paper (ImageNet 256, XL, FID-50K)"}


__all__ = [
    "resolve_metric", "steps_to_reach", "target_value", "Curve",
    "SpeedupResult", "speedup", "axis_at", "ratio", "BootstrapSpeedup", "bootstrap_speedup",
    "percentile_with_never", "statement", "summarise", "paper_speedup",
]
