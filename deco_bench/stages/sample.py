"""Stage `sample@<model>`: class-balanced samples from the EMA weights, in the ADM format.

runs/<model>/samples.npz holds arr_0 (uint8 NHWC) and labels; sample i is drawn from noise seeded by
(sample.seed, i) with class i mod data.num_classes, so the set is identical for any batch size or process count.
Work is written in shards (runs/<model>/sample_shards/, kept by DVC): a killed run resumes from its completed
shards, and under torchrun each process takes every world_size-th shard. previews/<model>.npz keeps a few samples
per class for the report.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from deco_bench import config as cfgmod
from deco_bench.io import (CorruptFileError, atomic_savez, atomic_write_json, check_free_space, load_npz,
                           safe_torch_load)
from deco_bench.stages import _common
from deco_bench.training.distributed import barrier, cleanup, init_distributed


def load_ema_model(weights: Path, device: torch.device):
    """A model built from the config stored with its EMA weights (final.pt or an eval checkpoint)."""
    from deco_bench.models import ModelConfig, build_model
    from deco_bench.training.checkpoint import load_weights_strict

    state = safe_torch_load(weights)
    if not isinstance(state, dict) or "ema" not in state or "model_config" not in state.get("meta", {}):
        raise CorruptFileError(f"{weights}: not a deco-bench EMA weights file (needs 'ema' and 'meta.model_config')")
    model_cfg = ModelConfig(**state["meta"]["model_config"])
    model = build_model(model_cfg)
    load_weights_strict(model, state["ema"], f"{weights}")
    return model.to(device).eval(), model_cfg


def sample_set(weights: Path, out_npz: Path, shard_dir: Path, *, sp: cfgmod.SampleParams, seed: int,
               num_classes: int, resolution: int, device_req: str, desc: str) -> None:
    """Sample sp.num_images images from `weights` into out_npz, resumably, across all processes of the world."""
    from deco_bench.diffusion.generate import generate

    dist_info = init_distributed(device_req)
    if dist_info.is_main:  # shards + the assembled npz, uncompressed uint8
        check_free_space(out_npz.parent, 2 * sp.num_images * resolution * resolution * 3, f"{desc} (samples)")
    model, model_cfg = load_ema_model(weights, dist_info.device)
    run_key = _common.fingerprint({"sample": cfgmod.to_dict(sp), "seed": seed, "num_classes": num_classes,
                                   "resolution": resolution, "weights": _common.file_digest(weights)})
    if dist_info.is_main:
        marker = shard_dir / "fingerprint.txt"
        if marker.exists() and marker.read_text().strip() != run_key:
            shutil.rmtree(shard_dir)  # shards of other weights or settings: never mix them in
        shard_dir.mkdir(parents=True, exist_ok=True)
        for stale in shard_dir.glob(".shard_*.tmp"):  # a killed run's half-written shard; no process writes yet
            stale.unlink(missing_ok=True)
        marker.write_text(run_key + "\n")
    barrier()
    n, size = sp.num_images, sp.shard_size
    shards = [(k, range(k * size, min(n, (k + 1) * size))) for k in range((n + size - 1) // size)]
    mine = [s for s in shards if s[0] % dist_info.world_size == dist_info.rank]
    todo = [s for s in mine if not _shard_ok(shard_dir / f"shard_{s[0]:05d}.npz", len(s[1]))]
    bar = _common.progress_bar(sum(len(r) for _, r in mine), desc, unit="img",
                               initial=sum(len(r) for _, r in mine) - sum(len(r) for _, r in todo),
                               disable=not dist_info.is_main)
    for k, idx in todo:
        images, labels = generate(model, idx, sp=sp, seed=seed, num_classes=num_classes, resolution=resolution,
                                  device=dist_info.device, null_label=model_cfg.num_classes, on_batch=bar.update)
        atomic_savez(shard_dir / f"shard_{k:05d}.npz", arr_0=images.numpy(), labels=labels.numpy(),
                     indices=np.asarray(list(idx), dtype=np.int64))
    bar.close()
    barrier()
    if dist_info.is_main:
        parts = [load_npz(shard_dir / f"shard_{k:05d}.npz") for k, _ in shards]
        arr = np.concatenate([p["arr_0"] for p in parts])
        if arr.shape[0] != n:
            raise CorruptFileError(f"{shard_dir}: shards hold {arr.shape[0]} images, expected {n}")
        atomic_savez(out_npz, arr_0=arr, labels=np.concatenate([p["labels"] for p in parts]))
    cleanup()


def _shard_ok(path: Path, expected: int) -> bool:
    if not path.exists():
        return False
    try:
        return load_npz(path, ["arr_0"])["arr_0"].shape[0] == expected
    except CorruptFileError:
        path.unlink()
        return False


PREVIEW_PER_CLASS = 8  # images per class kept for the report's sample grids
PREVIEW_MAX_CLASSES = 16


def write_preview(samples_npz: Path, out_npz: Path) -> None:
    """The first few samples of each of the first classes: all the report needs for its grids."""
    arrays = load_npz(samples_npz, ["arr_0", "labels"])
    labels = arrays["labels"]
    keep = [i for c in np.unique(labels)[:PREVIEW_MAX_CLASSES] for i in np.flatnonzero(labels == c)[:PREVIEW_PER_CLASS]]
    atomic_savez(out_npz, arr_0=arrays["arr_0"][keep], labels=labels[keep])


def run(params_path: str, name: str, run_dir: Path, preview: Path) -> None:
    p = _common.setup(params_path)
    _common.relaunch_with_torchrun(p, "deco_bench.stages.sample", sys.argv[1:])
    sample_set(run_dir / "final.pt", run_dir / "samples.npz", run_dir / "sample_shards", sp=p.sample,
               seed=p.sample.seed, num_classes=p.data.num_classes, resolution=p.data.resolution,
               device_req=p.run.device, desc=f"sample {name}")
    if _common.is_main_process():
        write_preview(run_dir / "samples.npz", preview / f"{name}.npz")
        atomic_write_json(preview / f"{name}.json", {"model": name, "num_images": p.sample.num_images,
                                                         "sampler": p.sample.sampler, "num_steps": p.sample.num_steps,
                                                         "cfg_scale": p.sample.cfg_scale, "seed": p.sample.seed})


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--run-dir", type=Path, default=None, help="default: runs/<model>")
    ap.add_argument("--preview", type=Path, default=Path("previews"),
                    help="folder for <model>.npz (a few samples per class) and <model>.json (sampling settings)")
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args.params, args.model, args.run_dir or Path("runs") / args.model,
                                     args.preview))


if __name__ == "__main__":
    main()
