"""Stage `ablation`: paper Tables 1 and 4 from our metrics, report-ready.

The variants are ordinary `models:` entries, trained, sampled and evaluated by the foreach stages; this stage only
reads evaluation/<m>.json (the evaluate stage's full result: metric, interval, bootstrap replicates) for exactly
the models of params.yaml (any other file in the folder is ignored), checks that each records the training step
params train.steps (its "train_step"; report.steps.TrainStepMismatchError names the files that do not), and writes
ablation/tables.json (deco_bench.studies.ablation.build_tables): per axis our metric per setting with its bootstrap
interval beside the paper's FID, the best setting of each side, the setting pairs that
we rank differently from the paper, and how many of our differences are significant. Axes without a trained
variant at this profile are listed as "not run at this profile".
"""

from __future__ import annotations

import json
from pathlib import Path

from deco_bench import config as cfgmod
from deco_bench.io import CorruptFileError, MissingFileError, atomic_write_json
from deco_bench.report.steps import StepSource, check_steps
from deco_bench.stages import _common
from deco_bench.studies.ablation import build_tables


def read_evaluations(evaluation_dir: Path, names) -> dict[str, dict]:
    out = {}
    for name in names:
        path = evaluation_dir / f"{name}.json"
        if not path.exists():
            raise MissingFileError(f"{path}: no evaluation of model {name!r} (run its evaluate stage)")
        try:
            out[name] = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise CorruptFileError(f"{path}: not valid JSON ({e})") from e
        if not isinstance(out[name].get("metrics"), dict):
            raise CorruptFileError(f"{path}: no 'metrics' mapping")
    return out


def run(params_path: str, evaluation_dir: Path, out_dir: Path) -> None:
    p = _common.setup(params_path)
    _common.remove_temporaries(out_dir)
    metrics = read_evaluations(evaluation_dir, p.models)
    check_steps([(StepSource(str(evaluation_dir / f"{m}.json"), "train_step", f"evaluate@{m}"), doc)
                 for m, doc in metrics.items()], p.train.steps)
    tables = build_tables(metrics, p, metric=p.ablation.metric, train_steps=p.train.steps)
    atomic_write_json(out_dir / "tables.json", tables)
    _common.write_resolved(out_dir / "params.json", p, ablation=cfgmod.to_dict(p.ablation))


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--evaluation", type=Path, default=Path("evaluation"),
                    help="folder of the evaluate stage's evaluation/<model>.json")
    ap.add_argument("--out", type=Path, default=Path("ablation"))
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args.params, args.evaluation, args.out))


if __name__ == "__main__":
    main()
