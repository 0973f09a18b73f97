"""Regression gate: compare a benchmark result JSON with a committed baseline, metric by metric.

    deco-bench gate bench/results.json bench/baselines/cpu-embedded.json [--tolerance memory=0.05]
                    [--allow-different-hardware] [--metric '*train*']

Each gated metric has a direction (higher is better for images/s, lower for time, memory and energy) and a
tolerance. The change is expressed as a "worsening factor" (result / baseline when lower is better, baseline /
result when higher is better), so "20% slower" is the factor 1.2 whatever the metric; a factor above
1 + tolerance is a regression. Exit status: 0 no regression, 1 regression (or a metric the baseline has and the
result lost), 2 refused (different hardware, unreadable input).

Ratios measured within one run (DeCo/baseline, ours/official) are preferred: they cancel most of the machine's
state. Absolute numbers from different hardware are not comparable at all, so the gate refuses them; with
--allow-different-hardware it gates the ratios only and shows the absolute numbers for information.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deco_bench.io import flatten

LOWER, HIGHER = "lower", "higher"

# (pattern over the flattened dotted path, direction, tolerance class). First match wins: ratio rules first.
RULES: list[tuple[str, str, str]] = [
    ("*ratios.*.s_per_iter.median", LOWER, "ratio"),
    ("*ratios.*.s_per_image.median", LOWER, "ratio"),
    ("*ratios.*.images_per_s.median", HIGHER, "ratio"),
    ("*ratios.*_bytes", LOWER, "ratio"),
    ("*.train.s_per_iter.median", LOWER, "time"),
    ("*.train.images_per_s.median", HIGHER, "throughput"),
    ("*.s_per_image.median", LOWER, "time"),
    ("*.images_per_s.median", HIGHER, "throughput"),
    ("*.memory.cuda_peak_allocated_bytes", LOWER, "memory"),
    ("*.memory.cuda_peak_reserved_bytes", LOWER, "memory"),
    ("*.memory.host_rss_peak_bytes", LOWER, "memory"),
    ("*.nvml.energy_j_per_image", LOWER, "energy"),
]
DEFAULT_TOLERANCE = {"time": 0.15, "throughput": 0.15, "memory": 0.10, "energy": 0.15, "ratio": 0.10}
# Keys of env.hardware that must match for absolute numbers to be comparable.
HARDWARE_KEYS = ("device_type", "device_name", "device_count", "cpu_model", "cpu_count", "torch_threads", "mig")


class GateInputError(ValueError):
    """A file is not a benchmark result the gate can read."""


@dataclass(frozen=True)
class Row:
    metric: str
    direction: str
    kind: str
    baseline: float | None
    result: float | None
    factor: float | None  # worsening factor: > 1 is worse
    limit: float
    status: str  # ok | REGRESSION | MISSING | not measured | not gated (...)


def rule_for(path: str) -> tuple[str, str] | None:
    for pattern, direction, kind in RULES:
        if fnmatch.fnmatchcase(path, pattern):
            return direction, kind
    return None


def worsening(baseline: float, result: float, direction: str) -> float:
    if direction == LOWER:
        return result / baseline if baseline else (1.0 if result == baseline else float("inf"))
    return baseline / result if result else float("inf")


def hardware_differences(result: dict, baseline: dict) -> list[str]:
    a = (result.get("env") or {}).get("hardware") or {}
    b = (baseline.get("env") or {}).get("hardware") or {}
    return [f"{k}: result {a.get(k)!r} vs baseline {b.get(k)!r}" for k in HARDWARE_KEYS if a.get(k) != b.get(k)]


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def compare(result: dict, baseline: dict, *, tolerance: dict[str, float] | None = None, ratios_only: bool = False,
            patterns: list[str] | None = None) -> list[Row]:
    """One row per gated metric of the baseline (and per metric new in the result, for information)."""
    tol = {**DEFAULT_TOLERANCE, **(tolerance or {})}
    base, res = flatten(baseline), flatten(result)
    rows = []
    for path in sorted(set(base) | set(res)):
        rule = rule_for(path)
        if rule is None or (patterns and not any(fnmatch.fnmatchcase(path, p) for p in patterns)):
            continue
        direction, kind = rule
        b, r = _number(base.get(path)), _number(res.get(path))
        limit = 1.0 + tol[kind]
        factor = worsening(b, r, direction) if b is not None and r is not None else None
        if path not in base:
            status = "new (not gated)"
        elif b is None and r is None:
            status = "not measured"
        elif b is None:
            status = "new (not gated)"
        elif r is None:
            status = "MISSING"
        elif ratios_only and kind != "ratio":
            status = "not gated (different hardware)"
        else:
            status = "REGRESSION" if factor > limit else "ok"
        rows.append(Row(path, direction, kind, b, r, factor, limit, status))
    return rows


def _fmt(v: float | None, path: str) -> str:
    if v is None:
        return "-"
    if path.endswith("_bytes") and "ratios" not in path:
        return f"{v / 2**20:.1f} MiB"
    if ".s_per_" in path and "ratios" not in path:
        return f"{v * 1e3:.3f} ms"
    return f"{v:.4g}"


def format_table(rows: list[Row]) -> str:
    """The comparison as text; metrics measured in neither file (e.g. CUDA memory on CPU) are only counted."""
    head = ("metric", "better", "baseline", "result", "change", "limit", "status")
    lines = [head]
    for r in rows:
        if r.status == "not measured":
            continue
        if r.factor is None:
            change = "-"
        elif abs(r.factor - 1) < 5e-4:
            change = "unchanged"
        else:
            change = f"{(r.factor - 1) * 100:.1f}% worse" if r.factor > 1 else f"{(1 - r.factor) * 100:.1f}% better"
        lines.append((r.metric, r.direction, _fmt(r.baseline, r.metric), _fmt(r.result, r.metric), change,
                      f"+{(r.limit - 1) * 100:.0f}%", r.status))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)
    skipped = sum(r.status == "not measured" for r in rows)
    return text + (f"\n({skipped} metrics measured in neither file, e.g. CUDA memory on CPU)" if skipped else "")


def _load(path: str) -> dict:
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise GateInputError(f"{p}: file not found") from None
    except json.JSONDecodeError as e:
        raise GateInputError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or "env" not in doc:
        raise GateInputError(f"{p}: not a deco-bench benchmark result (no 'env' fingerprint)")
    return doc


def _tolerances(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        if "=" in item:
            kind, value = item.split("=", 1)
            kinds = [kind]
        else:
            value, kinds = item, list(DEFAULT_TOLERANCE)
        for k in kinds:
            if k not in DEFAULT_TOLERANCE:
                raise GateInputError(f"--tolerance {item!r}: unknown class {k!r}; classes: "
                                     f"{', '.join(DEFAULT_TOLERANCE)}")
            try:
                out[k] = float(value)
            except ValueError:
                raise GateInputError(f"--tolerance {item!r}: {value!r} is not a number") from None
            if out[k] < 0:
                raise GateInputError(f"--tolerance {item!r}: must be >= 0")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="deco-bench gate", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("result", help="benchmark result JSON (e.g. bench/results.json)")
    ap.add_argument("baseline", help="committed baseline JSON (e.g. bench/baselines/cpu-embedded.json)")
    ap.add_argument("--tolerance", action="append", default=[], metavar="[CLASS=]FRACTION",
                    help=f"allowed worsening, per class ({', '.join(f'{k}={v}' for k, v in DEFAULT_TOLERANCE.items())}"
                         f" by default) or for all classes; repeatable")
    ap.add_argument("--allow-different-hardware", action="store_true",
                    help="compare results from different hardware: gate ratios only, show absolute numbers")
    ap.add_argument("--metric", action="append", default=[], metavar="PATTERN",
                    help="only metrics whose dotted path matches this glob; repeatable")
    args = ap.parse_args(argv)
    try:
        result, baseline = _load(args.result), _load(args.baseline)
        tolerance = _tolerances(args.tolerance)
    except GateInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    diffs = hardware_differences(result, baseline)
    if diffs and not args.allow_different_hardware:
        print("error: refusing to compare results from different hardware (absolute timings are not comparable):\n  "
              + "\n  ".join(diffs) + "\nre-run the baseline on this machine, or pass --allow-different-hardware to "
              "gate only the ratios measured within each run", file=sys.stderr)
        return 2
    rows = compare(result, baseline, tolerance=tolerance, ratios_only=bool(diffs), patterns=args.metric or None)
    print(format_table(rows))
    if diffs:
        print("\nnote: different hardware (" + "; ".join(diffs) + "): only ratios were gated")
    soft = [f"{k}: {(result['env']).get(k)!r} vs {(baseline['env']).get(k)!r}" for k in ("torch", "cuda", "dtype", "compile")
            if result["env"].get(k) != baseline["env"].get(k)]
    if soft:
        print("note: software differs (" + "; ".join(soft) + ")")
    bad = [r for r in rows if r.status in ("REGRESSION", "MISSING")]
    gated = [r for r in rows if r.status in ("ok", "REGRESSION", "MISSING")]
    if not gated:
        print("error: no metric was gated (nothing in common, or --metric matched nothing)", file=sys.stderr)
        return 2
    print(f"\n{len(gated)} metrics gated, {len(bad)} regression(s)" + (": " + ", ".join(r.metric for r in bad)
                                                                      if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
