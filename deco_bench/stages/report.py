"""Stage `report`: every stage's JSON output -> reports/index.html (self-contained; reads files, computes nothing).

Reads the standard paths of docs/outputs.md under --root (absent stages get a "did not run" message in their section),
for exactly the models of params.yaml `models:` (a removed model's leftover evaluation/ and previews/ files are
not read). Stops (report.steps.TrainStepMismatchError, "error: ..." and exit 2) when an output of a model's weights
(evaluation/<m>.json and previews/<m>.json "train_step", metrics/train/<m>.json "steps", ablation/tables.json
protocol.train_steps) records another training step than params train.steps, or none. Reads the `report:`
section of params.yaml: `tolerance` (paper-scale verdict: |ours - paper| <= max(tolerance,
bootstrap half-width), per paper metric), `per_class` and `max_classes` (the sample grids).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from deco_bench import config as cfgmod
from deco_bench.io import atomic_write_text
from deco_bench.report.context import build_context
from deco_bench.report.inputs import load_inputs
from deco_bench.report.render import render
from deco_bench.stages import _common


def run(params_path: str, root: Path, out: Path) -> None:
    p = cfgmod.load_params(params_path)
    rp = p.report
    _common.remove_temporaries(out.parent, names=(out.name,))

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
