"""Stage `convergence`: metric-vs-iteration curves of DeCo and the baseline and the speed-up factor (paper Fig. 5).

Every evaluation checkpoint (runs/<model>/eval_ckpts/step_*.pt, EMA weights on train.eval_ckpt_steps) of both
models is sampled with the same seeds (sample i: noise (sample.seed, i), class i mod C) and scored in the run's
feature space with a bootstrap. Outputs in <out>/:
  points/<model>/step_XXXXXXXX.json  one checkpoint: metrics, intervals, bootstrap replicates, settings fingerprint
  samples/<model>/step_XXXXXXXX.npz  its samples (ADM format), with a .sample.json fingerprint beside it
  curves.json                        rows {model, label, step, images_seen, elapsed_s, metric, lo, hi} (the
                                     top-level plots of dvc.yaml draw them as one chart with the intervals as bands)
  summary.json                       speed-up in iterations, wall-clock and images seen, intervals, the statement,
                                     reasons and the paper's points (what the report reads)
  speedup.json                       DVC metrics, numbers only: the speed-ups and their interval bounds
A checkpoint whose point file carries the current fingerprint (weights, settings, reference, feature net, code) is
not recomputed, so adding a step to the schedule evaluates only the new checkpoints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
from pathlib import Path

from deco_bench import config as cfgmod
from deco_bench.io import MissingFileError, atomic_write_json
from deco_bench.metrics import evaluate_samples
from deco_bench.metrics.api import LOWER_IS_BETTER
from deco_bench.stages import _common
from deco_bench.stages._sampling import sample_set
from deco_bench.studies import convergence as cv
from deco_bench.training.checkpoint import ckpt_name

CODE_PACKAGES = ("diffusion", "models", "metrics")  # the code a point depends on: a change re-evaluates


def code_digest() -> str:
    root = Path(cv.__file__).parent
    h = hashlib.sha256()
    for f in sorted(p for pkg in CODE_PACKAGES for p in (root / pkg).rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def plan(p: cfgmod.Params, conv: cfgmod.ConvergenceParams, runs: Path, out: Path, eval_key: dict) -> list[dict]:
    """One item per (model, scheduled step): paths and fingerprints; `todo` where the point is missing or stale."""
    sp = dataclasses.replace(p.sample, num_images=conv.num_images, num_steps=conv.num_steps)
    items = []
    for m in (conv.deco, conv.baseline):
        for step in p.train.eval_ckpt_steps:
            weights = runs / m / "eval_ckpts" / ckpt_name(step)
            if not weights.exists():
                raise MissingFileError(f"{weights}: evaluation checkpoint of step {step} not found (train.eval_ckpt_"
                                       f"steps lists it); re-run the train stage of {m!r}")
            stem = ckpt_name(step).removesuffix(".pt")
            sample_key = _common.fingerprint({"sample": cfgmod.to_dict(sp), "seed": p.sample.seed,
                                              "weights": _common.file_digest(weights), **eval_key["data"]})
            key = _common.fingerprint({"sample_key": sample_key, **eval_key})
            point = out / "points" / m / f"{stem}.json"
            items.append({"model": m, "step": step, "weights": weights, "point": point, "key": key, "sp": sp,
                          "sample_key": sample_key, "npz": out / "samples" / m / f"{stem}.npz",
                          "todo": _read_key(point) != key})
    return items


def _read_key(path: Path, field: str = "fingerprint") -> str | None:
    try:
        return json.loads(path.read_text()).get(field)
    except (OSError, ValueError, AttributeError):
        return None  # missing or damaged: recompute


def sample_point(p: cfgmod.Params, it: dict) -> None:
    sidecar = it["npz"].with_suffix(".sample.json")
    if it["npz"].exists() and _read_key(sidecar) == it["sample_key"]:
        return  # samples of these weights and settings exist: only the evaluation is redone
    shards = it["npz"].with_name(it["npz"].stem + "_shards")
    sample_set(it["weights"], it["npz"], shards, sp=it["sp"], seed=p.sample.seed, num_classes=p.data.num_classes,
               resolution=p.data.resolution, device_req=p.run.device, desc=f"convergence {it['model']}@{it['step']}",
               expected_step=it["step"], expected_name=it["model"])
    if _common.is_main_process():
        atomic_write_json(sidecar, {"fingerprint": it["sample_key"]})
        shutil.rmtree(shards, ignore_errors=True)  # the .npz holds them all


def evaluate_point(p: cfgmod.Params, conv: cfgmod.ConvergenceParams, it: dict, metric: str, reference: Path,
                   evalnet: Path) -> None:
    res = evaluate_samples(it["npz"], reference, feature_space=p.evaluate.feature_space,
                           feature_net_path=evalnet if p.evaluate.feature_space == "embed" else None,
                           inception_weights=p.evaluate.inception_weights or None,
                           num_images_expected=conv.num_images, bootstrap=conv.bootstrap, seed=p.run.seed,
                           batch_size=p.evaluate.batch_size, cache_dir=Path(".cache/features"))
    if metric not in res["metrics"]:
        raise MissingFileError(f"metric {metric!r} not computed for {it['npz']}: {res.get('skipped', {})}")
    lo, hi = res["ci"].get(metric, (None, None))
    atomic_write_json(it["point"], {"model": it["model"], "step": it["step"], "fingerprint": it["key"],
                                    "metric": metric, "value": res["metrics"][metric], "lo": lo, "hi": hi,
                                    **cfgmod.to_dict(res)})


def speedup_metrics(speed: dict) -> dict[str, float]:
    """speedup.json (DVC metrics): the speed-ups in iterations and wall-clock with their interval bounds as
    `_lo`/`_hi` keys, the share of bootstrap replicates where DeCo reaches the target, and the images per point.
    Numbers only: a value that does not exist (DeCo never reaches the target, an interval end without a bound) is
    left out; summary.json says why."""
    out: dict[str, float] = {}
    for name, interval in (("iters", "interval"), ("wall", "interval_wall")):
        values = {"": speed.get(f"speedup_{name}"), **dict(zip(("_lo", "_hi"), speed.get(interval) or (None, None)))}
        out.update({f"speedup_{name}{end}": float(v) for end, v in values.items() if v is not None})
    for key in ("fraction_reached", "num_images"):
        if speed.get(key) is not None:
            out[key] = speed[key]
    return out


def read_log(path: Path, last_step: int) -> dict[str, list[float]]:
    """The training log's step/elapsed_s/images_seen columns up to `last_step` (train.steps), never beyond it."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    rows = [r for r in rows if r.get("step", 0) <= last_step]
    return {k: [float(r[k]) for r in rows] for k in ("step", "elapsed_s", "images_seen")}


def run(params_path: str, runs: Path, data_dir: Path, evalnet: Path, out: Path) -> None:
    p = _common.setup(params_path)
    conv = p.convergence
    _common.relaunch_with_torchrun(p, "deco_bench.stages.convergence", sys.argv[1:])
    metric = cv.resolve_metric(conv, p.evaluate.feature_space)
    if _common.is_main_process():  # the stage owns convergence/: whatever a killed run left half-written goes
        _common.remove_temporaries(*[out, *sorted(d for d in out.rglob("*") if d.is_dir())] if out.is_dir() else [])
    reference = Path(p.evaluate.reference) if p.evaluate.reference else data_dir / "reference.npz"
    if not reference.is_file():
        raise MissingFileError(f"{reference}: reference batch not found (evaluate.reference, or the prepare stage's "
                               f"data/reference.npz): run the prepare stage")
    features = evalnet if p.evaluate.feature_space == "embed" else Path(p.evaluate.inception_weights)
    features_id = _common.file_digest(features) if features.is_file() else str(features)
    eval_key = {"metric": metric, "bootstrap": conv.bootstrap, "seed": p.run.seed,
                "feature_space": p.evaluate.feature_space, "features": features_id,
                "reference": _common.file_digest(reference), "code": code_digest(),
                "data": {"num_classes": p.data.num_classes, "resolution": p.data.resolution}}
    items = plan(p, conv, runs, out, eval_key)
    todo = [it for it in items if it["todo"]]  # decided before anything is written (same list on every rank)
    for it in todo:
        sample_point(p, it)
    if not _common.is_main_process():
        return
    print(f"convergence: {len(todo)} of {len(items)} checkpoints to evaluate", file=sys.stderr)
    for it in todo:
        evaluate_point(p, conv, it, metric, reference, evalnet)
    points = {m: [json.loads(it["point"].read_text()) for it in items if it["model"] == m]
              for m in (conv.deco, conv.baseline)}
    rows, speed = cv.summarise(points, {m: read_log(runs / m / "train_log.jsonl", p.train.steps) for m in points}, conv,
                               metric=metric, lower_is_better=metric in LOWER_IS_BETTER,
                               labels={m: p.model(m).label or m for m in points})
    speed.update(scale=p.run.scale, profile=p.run.profile)
    atomic_write_json(out / "curves.json", rows)
    atomic_write_json(out / "summary.json", speed)
    atomic_write_json(out / "speedup.json", speedup_metrics(speed))
    _common.write_resolved(out / "params.json", p, convergence=cfgmod.to_dict(conv), metric=metric)


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--runs", type=Path, default=Path("runs"), help="folder of runs/<model>/")
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--evalnet", type=Path, default=Path("runs/evalnet/net.pt"))
    ap.add_argument("--out", type=Path, default=Path("convergence"))
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args.params, args.runs, args.data, args.evalnet, args.out))


if __name__ == "__main__":
    main()
