"""Stage `sample@<model>`: class-balanced samples from the EMA weights, in the ADM format.

runs/<model>/samples.npz holds arr_0 (uint8 NHWC) and labels; sample i is drawn from noise seeded by
(sample.seed, i) with class i mod data.num_classes, so the set is identical for any batch size or process count.
Work is written in shards (runs/<model>/sample_shards/, kept by DVC): a killed run resumes from its completed
shards, and under torchrun each process takes every world_size-th shard. previews/<model>.npz keeps a few samples
per class for the report, and previews/<model>.png shows them as one grid (rows = classes; a DVC image plot).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from deco_bench.io import atomic_path, atomic_savez, atomic_write_json, load_npz, open_for_write
from deco_bench.report.grid import sample_grid
from deco_bench.stages import _common
from deco_bench.stages._sampling import load_ema_model, sample_set  # noqa: F401  (load_ema_model: public here too)

PREVIEW_PER_CLASS = 8  # images per class kept for the report's sample grids
PREVIEW_MAX_CLASSES = 16


def write_preview(samples_npz: Path, out_npz: Path) -> None:
    """The first few samples of each of the first classes: all the report needs for its grids."""
    arrays = load_npz(samples_npz, ["arr_0", "labels"])
    labels = arrays["labels"]
    keep = [i for c in np.unique(labels)[:PREVIEW_MAX_CLASSES] for i in np.flatnonzero(labels == c)[:PREVIEW_PER_CLASS]]
    atomic_savez(out_npz, arr_0=arrays["arr_0"][keep], labels=labels[keep])


GRID_TILE = 64  # px per sample in previews/<model>.png: larger samples are subsampled, smaller ones repeated


def write_grid_png(preview_npz: Path, out_png: Path) -> None:
    """The preview as one PNG, a row per class, each sample GRID_TILE px wide (subsampled, or each pixel repeated
    by an integer factor, never interpolated): `dvc plots show` shows it as an image plot."""
    arrays = load_npz(preview_npz, ["arr_0", "labels"])
    grid, _ = sample_grid(arrays["arr_0"], arrays["labels"], per_class=PREVIEW_PER_CLASS,
                          max_classes=PREVIEW_MAX_CLASSES, max_tile=GRID_TILE)
    factor = max(1, GRID_TILE // arrays["arr_0"].shape[1])
    grid = grid.repeat(factor, axis=0).repeat(factor, axis=1)
    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="PNG")  # no timestamp: the same samples give the same bytes
    with atomic_path(out_png) as tmp, open_for_write(tmp) as f:
        f.write(buf.getvalue())


def run(params_path: str, name: str, run_dir: Path, preview: Path) -> None:
    p = _common.setup(params_path)
    _common.relaunch_with_torchrun(p, "deco_bench.stages.sample", sys.argv[1:])
    p.model(name)  # an unknown model name fails here, before any work
    step = sample_set(run_dir / "final.pt", run_dir / "samples.npz", run_dir / "sample_shards", sp=p.sample,
                      seed=p.sample.seed, num_classes=p.data.num_classes, resolution=p.data.resolution,
                      device_req=p.run.device, desc=f"sample {name}", expected_step=p.train.steps,
                      expected_name=name)
    if _common.is_main_process():
        _common.remove_temporaries(preview, names=(f"{name}.npz", f"{name}.json", f"{name}.png"))
        write_preview(run_dir / "samples.npz", preview / f"{name}.npz")
        write_grid_png(preview / f"{name}.npz", preview / f"{name}.png")
        atomic_write_json(preview / f"{name}.json", {"model": name, "train_step": step,
                                                         "num_images": p.sample.num_images,
                                                         "sampler": p.sample.sampler, "num_steps": p.sample.num_steps,
                                                         "cfg_scale": p.sample.cfg_scale, "seed": p.sample.seed})


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--run-dir", type=Path, default=None, help="default: runs/<model>")
    ap.add_argument("--preview", type=Path, default=Path("previews"),
                    help="folder for <model>.npz (a few samples per class), <model>.png (them as one grid) and "
                         "<model>.json (sampling settings)")
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args.params, args.model, args.run_dir or Path("runs") / args.model,
                                     args.preview))


if __name__ == "__main__":
    main()
