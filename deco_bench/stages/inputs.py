"""Stage `inputs`: the sha256 of every file a parameter names, so that replacing such a file re-runs its readers.

DVC tracks the files dvc.yaml lists; a file named by a parameter (`evaluate.reference`, `evaluate.inception_weights`,
`models.<m>.init_from`, `train.repa_encoder_weights`) could be replaced behind its back and the old results would
stay. This stage runs on every `dvc repro` (it is cheap: a hash is remembered per path, size and modification time)
and writes one small JSON per reader into inputs/: `train-<model>.json`, `released-<row>.json` and
`evaluate.json`. Each stage that reads such a file depends on its JSON, so it re-runs exactly when the content
of one of its files changed.
"""

from __future__ import annotations

from pathlib import Path

from deco_bench.config import Params
from deco_bench.io import atomic_write_json, sha256_cached
from deco_bench.stages import _common


def describe(path: str) -> dict | None:
    """{"path", "sha256"} of a named file; None for an empty parameter; sha256 None for a missing file (the stage
    that reads it names the problem)."""
    if not path:
        return None
    return {"path": path, "sha256": sha256_cached(path) if Path(path).is_file() else None}


def consumers(p: Params) -> dict[str, dict]:
    """File name in inputs/ -> {parameter: description} for every reader of parameter-named files."""
    out = {f"train-{name}.json": {f"models.{name}.init_from": describe(p.model(name).init_from),
                                  "train.repa_encoder_weights": describe(p.train.repa_encoder_weights)}
           for name in p.models}
    for name, row in p.released.items():
        out[f"released-{name}.json"] = {f"released.{name}.checkpoint": describe(row.checkpoint)}
    out["evaluate.json"] = {"evaluate.reference": describe(p.evaluate.reference),
                            "evaluate.inception_weights": describe(p.evaluate.inception_weights)}
    return out


def run(params_path: str, out: Path) -> None:
    p = _common.setup(params_path)
    wanted = consumers(p)
    if out.is_dir():  # readers of models no longer in params.yaml
        for stale in out.glob("*.json"):
            if stale.name not in wanted:
                stale.unlink()
    for fname, files in wanted.items():
        atomic_write_json(out / fname, files)


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--out", type=Path, default=Path("inputs"))
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args.params, args.out))


if __name__ == "__main__":
    main()
