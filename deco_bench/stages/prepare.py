"""Stage `prepare`: check every file the parameters name, then build the training data and the evaluation reference.

First, before anything else: every weights/reference file the active parameters name (train.repa_encoder_weights,
models.*.init_from, evaluate.inception_weights, evaluate.reference) must be present, and a file with a published
sha256 (deco_bench/metrics/weights.py) must have it; otherwise the stage stops (exit 2) with one line per file
naming it, its expected sha256 (or that none is published) and where to get it, so that a missing or wrong file is
found before training, not at the evaluate stage. The sha256 of each manifest file found is recorded in info.json.

embedded: crops of the photographs scikit-image ships -> data/train.npz (images, labels) and data/reference.npz
(ADM format: arr_0 uint8 NHWC, plus labels). imagenet: check the folder before any GPU time is spent and record
its summary; the reference batch is `evaluate.reference` (e.g. ADM's VIRTUAL_imagenet256_labeled.npz).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deco_bench.config import to_dict
from deco_bench.data import build_embedded_dataset
from deco_bench.data.imagenet import check_image_folder, resolve_imagenet_root
from deco_bench.io import atomic_savez, atomic_write_json, sha256_cached
from deco_bench.metrics import weights
from deco_bench.stages import _common
from deco_bench import config


def run(params_path: str, out: Path) -> None:
    p = _common.setup(params_path)

    # before anything else: raises naming every bad file (hashes remembered per path, size and mtime)
    checks = weights.verify_all(config.required_files(p), hasher=sha256_cached)
    info: dict = {"source": p.data.source, "resolution": p.data.resolution, "scale": p.run.scale,
                  "files": {c.file.param: {"path": str(c.file.path), "sha256": c.sha256} for c in checks}}
    if p.data.source == "embedded":
        ds = build_embedded_dataset(resolution=p.data.resolution, num_classes=p.data.num_classes,
                                    train_per_class=p.data.train_per_class, ref_per_class=p.data.ref_per_class,
                                    seed=p.run.seed)
        atomic_savez(out / "train.npz", images=ds.train_images, labels=ds.train_labels)
        atomic_savez(out / "reference.npz", arr_0=ds.ref_images, labels=ds.ref_labels)
        info.update(class_names=list(ds.class_names), num_train=int(len(ds.train_labels)),
                    num_reference=int(len(ds.ref_labels)),
                    train_class_counts=np.bincount(ds.train_labels, minlength=p.data.num_classes).tolist())
    else:
        root = resolve_imagenet_root(p.data.imagenet_root)
        summary = check_image_folder(root, resolution=p.data.resolution, expect_num_classes=p.data.num_classes)
        info.update(root=str(root), summary=to_dict(summary))
    _common.write_resolved(out / "params.json", p)
    atomic_write_json(out / "info.json", info)


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--out", type=Path, default=Path("data"))
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args.params, args.out))


if __name__ == "__main__":
    main()
