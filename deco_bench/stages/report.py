"""Stage `report`: every stage's JSON output -> reports/index.html (self-contained; reads files, computes nothing).

Reads the standard paths of docs/outputs.md under --root (absent stages get a "did not run" message in their section),
for exactly the models of params.yaml `models:` (a removed model's leftover metrics/ and previews/ files are not
read). Stops (report.steps.TrainStepMismatchError, "error: ..." and exit 2) when an output of a model's weights
(metrics/<m>.json and previews/<m>.json "train_step", metrics/train/<m>.json "steps", ablation/tables.json
protocol.train_steps) records another training step than params train.steps, or none. Reads the `report:`
section of params.yaml: `tolerance` (paper-scale verdict: |ours - paper| <= max(tolerance,
bootstrap half-width), per paper metric), `per_class` and `max_classes` (the sample grids).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from deco_bench import config as cfgmod
from deco_bench.io import atomic_write_text
from deco_bench.stages import _common


@dataclass(frozen=True)
class ReportParams:
    tolerance: dict = field(default_factory=dict)
    per_class: int = 6
    max_classes: int = 8


def report_params(raw: dict | None) -> ReportParams:
    from deco_bench.report.context import DEFAULT_TOLERANCE

    raw = raw or {}
    problems = [(f"report.{k}", "unknown key; accepted: tolerance, per_class, max_classes")
                for k in raw if k not in ("tolerance", "per_class", "max_classes")]
    tol = raw.get("tolerance") or {}
    if not isinstance(tol, dict):
        problems.append(("report.tolerance", f"must be a mapping metric -> number, got {tol!r}"))
        tol = {}
    for k, v in tol.items():
        if k not in DEFAULT_TOLERANCE:
            problems.append((f"report.tolerance.{k}", f"unknown metric; accepted: {', '.join(DEFAULT_TOLERANCE)}"))
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            problems.append((f"report.tolerance.{k}", f"must be a number >= 0, got {v!r}"))
    for k in ("per_class", "max_classes"):
        v = raw.get(k, getattr(ReportParams, k))
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            problems.append((f"report.{k}", f"must be an integer >= 1, got {v!r}"))
    if problems:
        raise cfgmod.ConfigError(problems)
    return ReportParams(tolerance={k: float(v) for k, v in tol.items()}, per_class=raw.get("per_class", 6),
                        max_classes=raw.get("max_classes", 8))


def run(params_path: str, root: Path, out: Path) -> None:
    p = cfgmod.load_params(params_path)
    rp = report_params(p.extra.get("report"))
    from deco_bench.report.context import build_context, load_inputs
    from deco_bench.report.render import render

    inputs = load_inputs(root, per_class=rp.per_class, max_classes=rp.max_classes)
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    atomic_write_text(out, render(build_context(inputs, tolerance=rp.tolerance, generated_at=now)))


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--root", type=Path, default=Path("."), help="repository root holding the stage outputs")
    ap.add_argument("--out", type=Path, default=Path("reports/index.html"))
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args.params, args.root, args.out))


if __name__ == "__main__":
    main()
