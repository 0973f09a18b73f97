"""Stage `prepare`: check every file the parameters name, then build the training data and the evaluation reference.

First, before anything else: every weights/reference file the active parameters name (train.repa_encoder_weights,
models.*.init_from, evaluate.inception_weights, evaluate.reference) must be present, and a file with a published
sha256 (deco_bench/metrics/weights.py) must have it; otherwise the stage stops (exit 2) with one line per file
naming it, its expected sha256 (or that none is published) and where to get it, so that a missing or wrong file is
found before training, not at the evaluate stage. The sha256 of each manifest file found is recorded in info.json.

embedded: crops of the photographs scikit-image ships -> data/train.npz (images, labels) and data/reference.npz
(ADM format: arr_0 uint8 NHWC, plus labels), and data/heldout.npz: sample.num_images real crops of a third split,
ordered like a sample set (the evaluation's real-vs-real floor and class-accuracy ceiling). imagenet: check the
folder before any GPU time is spent, decode every image (in parallel, one process per CPU) and record its summary
and the files a run will skip (data.on_bad_image: skip) or stop on (fail); the reference batch is
`evaluate.reference` (e.g. ADM's VIRTUAL_imagenet256_labeled.npz).
metrics/prepare/data.json (DVC metrics, numbers only): the image count and how many images are skipped (the source
and everything else is in data/info.json).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from deco_bench.config import to_dict
from deco_bench.data import build_embedded_dataset
from deco_bench.data.embedded import build_heldout_split
from deco_bench.data.imagenet import ImageFolderDataset, check_image_folder, resolve_imagenet_root
from deco_bench.io import atomic_savez, atomic_write_json, atomic_write_metrics, sha256_cached
from deco_bench.metrics import weights
from deco_bench.stages import _common
from deco_bench import config


MAX_LISTED_SKIPS = 1000  # skipped files named in info.json (the count covers them all)


def run(params_path: str, out: Path, metrics: Path | None = None) -> None:
    p = _common.setup(params_path)
    metrics = metrics if metrics is not None else out.parent / "metrics" / "prepare" / "data.json"
    _common.remove_temporaries(out)
    _common.remove_temporaries(metrics.parent, names=(metrics.name,))

    # before anything else: raises naming every bad file (hashes remembered per path, size and mtime)
    checks = weights.verify_all(config.required_files(p), hasher=sha256_cached)
    info: dict = {"source": p.data.source, "resolution": p.data.resolution, "scale": p.run.scale,
                  "files": {c.file.param: {"path": str(c.file.path), "sha256": c.sha256} for c in checks}}
    if p.data.source == "embedded":
        ds = build_embedded_dataset(resolution=p.data.resolution, num_classes=p.data.num_classes,
                                    train_per_class=p.data.train_per_class, ref_per_class=p.data.ref_per_class,
                                    seed=p.run.seed, crop_fraction=tuple(p.data.crop_scale))
        atomic_savez(out / "train.npz", images=ds.train_images, labels=ds.train_labels)
        atomic_savez(out / "reference.npz", arr_0=ds.ref_images, labels=ds.ref_labels)
        held_images, held_labels = build_heldout_split(
            resolution=p.data.resolution, num_classes=p.data.num_classes, num_images=p.sample.num_images,
            seed=p.run.seed, crop_fraction=tuple(p.data.crop_scale))
        atomic_savez(out / "heldout.npz", arr_0=held_images, labels=held_labels)
        info.update(class_names=list(ds.class_names), num_train=int(len(ds.train_labels)),
                    num_reference=int(len(ds.ref_labels)),
                    train_class_counts=np.bincount(ds.train_labels, minlength=p.data.num_classes).tolist())
        counts = {"num_images": int(len(ds.train_labels)), "skipped_images": 0}
    else:
        root = resolve_imagenet_root(p.data.imagenet_root)
        summary = check_image_folder(root, resolution=p.data.resolution, expect_num_classes=p.data.num_classes)
        # every file decoded now, in parallel, so the run knows (and the metrics say) how many it will skip
        dataset = ImageFolderDataset(root, p.data.resolution, on_bad_image=p.data.on_bad_image,
                                     expect_num_classes=p.data.num_classes)
        skipped = dataset.verify_all(workers=os.cpu_count() or 1)
        counts = {"num_images": summary.num_images, "skipped_images": len(skipped)}
        info.update(root=str(root), summary=to_dict(summary), **counts,
                    skipped={str(path): reason for path, reason in sorted(skipped.items())[:MAX_LISTED_SKIPS]})
    _common.write_resolved(out / "params.json", p)
    atomic_write_json(out / "info.json", info)
    atomic_write_metrics(metrics, counts)


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--out", type=Path, default=Path("data"))
    ap.add_argument("--metrics", type=Path, default=Path("metrics/prepare/data.json"),
                    help="image counts, skipped (unreadable) images included (DVC metrics)")
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args.params, args.out, args.metrics))


if __name__ == "__main__":
    main()
