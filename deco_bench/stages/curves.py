"""Stage `curves`: the training loss of every model of `models:` in one long-form file, for one chart.

Reads each train@<model>'s loss curve (<curves>/<model>.json, rows {step, loss, ...}) and writes <out>
(plots/train_loss.json): rows {model, label, step, loss}, every model of params `models:` in their order. The
top-level `plots:` of dvc.yaml draws it as one chart, one line per model (plots/templates/by_model.json): DVC's
top-level plots cannot loop over `models:`, and a folder of files would be one chart per file. No torch work;
about a second.
"""

from __future__ import annotations

import json
from pathlib import Path

from deco_bench import config as cfgmod
from deco_bench.io import DecoBenchError, MissingFileError, atomic_write_json
from deco_bench.stages import _common


def long_form(p: cfgmod.Params, curves: dict[str, list]) -> list[dict]:
    """One row per (model, logged step) that has a loss, labelled as params `models:` labels the model."""
    return [{"model": m, "label": p.model(m).label or m, "step": r["step"], "loss": r["loss"]}
            for m in p.models for r in curves[m] if isinstance(r, dict) and "step" in r and "loss" in r]


def run(params_path: str, curves_dir: Path, out: Path) -> None:
    p = _common.setup(params_path)
    _common.remove_temporaries(out.parent, names=(out.name,))
    curves = {}
    for m in p.models:
        path = curves_dir / f"{m}.json"
        try:
            curves[m] = json.loads(path.read_text())
        except FileNotFoundError as e:
            raise MissingFileError(f"{path}: the training curve of {m!r} is missing; run train@{m}") from e
        except ValueError as e:
            raise DecoBenchError(f"{path}: not a training curve ({e}); re-run train@{m}") from e
        if not isinstance(curves[m], list):
            raise DecoBenchError(f"{path}: not a training curve (a list of rows is expected); re-run train@{m}")
    atomic_write_json(out, long_form(p, curves))


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--curves", type=Path, default=Path("plots/train"), help="folder of the train stages' <model>.json")
    ap.add_argument("--out", type=Path, default=Path("plots/train_loss.json"))
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args.params, args.curves, args.out))


if __name__ == "__main__":
    main()
