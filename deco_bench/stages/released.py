"""Stages `released-sample@<row>` and `released-evaluate@<row>`: paper Table 2 from DeCo's released checkpoints.

No training. Each row of the `released:` section (profiles released-256 and released-512) names an official
checkpoint, the preset it must fit and the sampler of one Table 2 row.

    python -m deco_bench.stages.released sample --row e800-100     -> released/<row>/samples.npz, sampling.json
    python -m deco_bench.stages.released evaluate --row e800-100   -> released/<row>/metrics.json,
                                                                       released/results/<row>.json

sample: the checkpoint is read weights-only and loaded strictly (models.official.load_released: every key and
shape of the EMA or raw weights must fit the preset, the parameter counts must be equal). sample.num_images
class-balanced images (image i has class i mod data.num_classes and noise seeded by (sample.seed, i)), written in
resumable shards across torchrun processes and assembled shard by shard. sampling.json is the protocol manifest of
the set: checkpoint sha256, EMA or raw, sampler, steps, the NFE counted at the model (a CFG row counts twice only
where guidance is active), CFG scale and interval, time shift, seed, a hash of the label schedule, dtype, matmul
precision, hardware.

evaluate: the ADM protocol (torch-fidelity's Inception in float64 against evaluate.reference) with bootstrap
intervals; the manifest gains the evaluator weights' and the reference batch's sha256 and the IS ordering.
metrics.json holds numbers only (what `dvc metrics show` lists); results/<row>.json everything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deco_bench.bench.env import hardware
from deco_bench.config import ConfigError, Params, ReleasedRow, to_dict
from deco_bench.diffusion.sampler import class_balanced_labels
from deco_bench.io import ChecksumError, atomic_write_json, atomic_write_metrics, load_npz, sha256_cached
from deco_bench.metrics import api, ordering
from deco_bench.metrics.weights import RequiredFile, by_filename, check_file
from deco_bench.models import get_preset
from deco_bench.models.official import load_released
from deco_bench.stages import _common
from deco_bench.stages._sampling import sample_set

OUT = Path("released")


class CountingModel(nn.Module):
    """Passes every call to the model and counts the images it was asked for: the measured NFE."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.prediction = getattr(inner, "prediction", "v")  # what the sampler converts from (path.prediction_of)
        self.rows = 0

    def forward(self, x, t, y, *args, **kwargs):
        self.rows += int(x.shape[0])
        return self.inner(x, t, y, *args, **kwargs)


def row_of(p: Params, name: str) -> ReleasedRow:
    if name not in p.released:
        raise ConfigError([(f"released.{name}", f"no such row; defined: {sorted(p.released) or 'none'} (select a "
                                                "released profile: deco-bench profile use released-256)")])
    return p.released[name]


def sample_params(p: Params, row: ReleasedRow):
    """The `sample:` section with the row's sampler settings (the row decides everything a Table 2 row varies)."""
    return dataclasses.replace(p.sample, sampler=row.sampler, num_steps=row.num_steps, cfg_scale=row.cfg_scale,
                               guidance_interval=list(row.guidance_interval), timeshift=row.timeshift)


def checkpoint_sha256(name: str, row: ReleasedRow) -> str:
    """Presence (and a pinned sha256) of the row's checkpoint, named like every other file problem."""
    path = Path(row.checkpoint)
    check = check_file(RequiredFile(f"released.{name}.checkpoint", path, by_filename(path.name),
                          "an official-format checkpoint of your own"), hasher=sha256_cached)
    if check.problem is not None:
        raise check.problem
    digest = check.sha256 or sha256_cached(path)
    if row.checkpoint_sha256 and digest != row.checkpoint_sha256:
        raise ChecksumError(f"released.{name}.checkpoint: {path} has sha256 {digest}, the profile pins "
                            f"{row.checkpoint_sha256} (a different or damaged file)")
    return digest


def label_schedule_hash(num_images: int, num_classes: int) -> str:
    labels = class_balanced_labels(torch.arange(num_images), num_classes).numpy().astype(np.int64)
    return hashlib.sha256(labels.tobytes()).hexdigest()


def run_sample(params_path: str, name: str, out_root: Path) -> None:
    p = _common.setup(params_path)
    _common.relaunch_with_torchrun(p, "deco_bench.stages.released", sys.argv[1:])
    row = row_of(p, name)
    out = out_root / name
    digest = checkpoint_sha256(name, row)
    cfg = dataclasses.replace(get_preset(row.preset), num_classes=p.data.num_classes)
    counter: dict[str, CountingModel] = {}

    def loader(device: torch.device):
        model = CountingModel(load_released(row.checkpoint, cfg, ema=row.weights == "ema").to(device).eval())
        counter["model"] = model
        return model, cfg, -1  # -1: not a deco-bench training step; the manifest names the checkpoint and epochs

    sp = sample_params(p, row)
    before = _existing_images(out / "sample_shards")
    sample_set(Path(row.checkpoint), out / "samples.npz", out / "sample_shards", sp=sp, seed=sp.seed,
               num_classes=p.data.num_classes, resolution=p.data.resolution, device_req=p.run.device,
               desc=f"sample {name}", loader=loader)
    if not _common.is_main_process():
        return
    model = counter["model"]
    drawn = _existing_images(out / "sample_shards") - before
    if drawn <= 0:  # every shard was already there: count one image's trajectory instead
        nfe, nfe_source = _probe_nfe(model, sp, p), "counted on one probe image (the set was complete already)"
    else:
        nfe, nfe_source = model.rows / drawn, f"counted over the {drawn} images drawn by this run"
    device = next(model.parameters()).device
    atomic_write_json(out / "sampling.json", {
        "row": name, "label": row.label or name, "epochs": row.epochs, "resolution": p.data.resolution,
        "checkpoint": row.checkpoint, "checkpoint_sha256": digest, "weights": row.weights, "preset": row.preset,
        "parameters": sum(q.numel() for q in model.inner.parameters()),
        "sampler": sp.sampler, "num_steps": sp.num_steps, "nfe_per_image": nfe, "nfe_source": nfe_source,
        "cfg_scale": sp.cfg_scale, "guidance_interval": list(sp.guidance_interval), "timeshift": sp.timeshift,
        "seed": sp.seed, "num_images": sp.num_images, "num_classes": p.data.num_classes,
        "label_schedule": "class i mod num_classes", "label_schedule_sha256":
            label_schedule_hash(sp.num_images, p.data.num_classes),
        "noise": "image i from a generator seeded by (seed, i)", "dtype": "float32",
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "hardware": hardware(device, p.run.threads or None),
    })


def _existing_images(shard_dir: Path) -> int:
    total = 0
    for shard in sorted(shard_dir.glob("shard_*.npz")):
        total += int(load_npz(shard, ["indices"])["indices"].shape[0])
    return total


def _probe_nfe(model: CountingModel, sp, p: Params) -> float:
    from deco_bench.diffusion.generate import generate
    model.rows = 0
    one = dataclasses.replace(sp, num_images=1, batch_size=1)
    generate(model, [0], sp=one, seed=sp.seed, num_classes=p.data.num_classes, resolution=p.data.resolution,
             device=next(model.parameters()).device, null_label=p.data.num_classes)
    return float(model.rows)


def run_evaluate(params_path: str, name: str, out_root: Path) -> None:
    p = _common.setup(params_path)
    row = row_of(p, name)
    out = out_root / name
    _common.remove_temporaries(out, names=("metrics.json",))
    _common.remove_temporaries(out_root / "results", names=(f"{name}.json",))
    samples, reference = out / "samples.npz", Path(p.evaluate.reference)
    manifest = json.loads((out / "sampling.json").read_text())
    if manifest.get("checkpoint_sha256") != checkpoint_sha256(name, row):
        raise ChecksumError(f"{out / 'samples.npz'} was drawn from another checkpoint than "
                            f"released.{name}.checkpoint; re-run released-sample@{name}")
    result = api.evaluate_samples(samples, reference, feature_space="inception",
                                  inception_weights=p.evaluate.inception_weights,
                                  inception_sha256=inception_sha256(p),
                                  num_images_expected=p.sample.num_images, bootstrap=p.evaluate.bootstrap,
                                  seed=p.run.seed, batch_size=p.evaluate.batch_size, cache_dir=Path(".cache/features"),
                                  resolution=p.data.resolution)
    feats = _logits(samples, p, result["extractor"]["weights_sha256"])
    order = ordering.detect(load_npz(samples, ["labels"])["labels"], feats)
    protocol = {**manifest, "evaluator": "ADM protocol (deco_bench.metrics; torch-fidelity Inception, float64)",
                "evaluator_weights_sha256": result["extractor"]["weights_sha256"],
                "reference": str(reference), "reference_sha256": sha256_cached(reference),
                "num_images_scored": result["num_images"], "is_ordering": "file order (ADM); the set cycles "
                "through the classes" if not order.class_sorted else "file order (ADM); class-sorted",
                "bootstrap_replicates": p.evaluate.bootstrap}
    numbers = api.flat_metrics(result, bounds=None)  # a Table 2 row: every metric with its interval bounds
    numbers["num_images"] = result["num_images"]
    numbers["nfe_per_image"] = float(manifest["nfe_per_image"])
    atomic_write_metrics(out / "metrics.json", numbers)
    atomic_write_json(out_root / "results" / f"{name}.json", {
        "row": name, "label": row.label or name, "row_params": to_dict(row), "metrics": result["metrics"],
        "ci": result["ci"], "skipped": result["skipped"], "ordering": order.as_dict(), "protocol": protocol})


def inception_sha256(p: Params) -> str | None:
    """evaluate.inception_sha256 as the metrics API takes it ('manifest', a hash, or None for no check)."""
    return None if p.evaluate.inception_sha256.lower() == "none" else p.evaluate.inception_sha256


def _logits(samples: Path, p: Params, weights_sha256: str) -> np.ndarray:
    """The Inception logits of the sample set, from the feature cache evaluate_samples just filled (same extractor
    identity, so nothing is extracted or hashed again)."""
    from deco_bench.metrics.features import extract_npz
    from deco_bench.metrics.inception import InceptionFeatures
    net = InceptionFeatures(p.evaluate.inception_weights, weights_sha256=weights_sha256,
                            device="cuda" if torch.cuda.is_available() else "cpu")
    return extract_npz(samples, net, num_images=p.sample.num_images, batch_size=p.evaluate.batch_size,
                       cache_dir=Path(".cache/features"))["logits"]


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("action", choices=["sample", "evaluate"])
    ap.add_argument("--row", required=True, help="a key of the `released:` section")
    ap.add_argument("--out", type=Path, default=OUT, help="folder of the rows' outputs (default: released)")
    args = ap.parse_args()
    fn = run_sample if args.action == "sample" else run_evaluate
    _common.main_wrapper(lambda: fn(args.params, args.row, args.out))


if __name__ == "__main__":
    main()
