"""What the stages that sample from trained weights share (sample, convergence, spectrum).

`load_ema_model` builds a model from a deco-bench EMA weights file, checking the step and run it records;
`sample_set` draws a class-balanced ADM-format sample set from one, resumably, in shards, across processes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from deco_bench import config as cfgmod
from deco_bench.diffusion.generate import generate
from deco_bench.metrics.adm_npz import write_images_streaming
from deco_bench.io import CorruptFileError, atomic_savez, atomic_write_text, check_free_space, load_npz, safe_torch_load
from deco_bench.models import ModelConfig, build_model
from deco_bench.models.loading import load_weights_strict
from deco_bench.stages import _common
from deco_bench.training.checkpoint import check_ema_state
from deco_bench.training.distributed import barrier, cleanup, init_distributed
from deco_bench.training.resume import check_weights_step


def load_ema_model(weights: Path, device: torch.device, expected_step: int | None = None,
                   expected_name: str | None = None):
    """(model, config, step) from EMA weights (final.pt or an eval checkpoint) and the config stored with them.

    The file's recorded step (and run name) must be the ones the caller claims: a sample set is never labelled
    with a step its weights do not have.
    """

    state = safe_torch_load(weights)
    if (not isinstance(state, dict) or not isinstance(state.get("meta"), dict) or "ema" not in state
            or "model_config" not in state["meta"]):
        raise CorruptFileError(f"{weights}: not a deco-bench EMA weights file (needs 'ema' and 'meta.model_config')")
    check_ema_state(state, weights)
    check_weights_step(state, weights, expected_step, expected_name)
    try:
        model_cfg = ModelConfig(**state["meta"]["model_config"])
    except (TypeError, ValueError) as e:
        raise CorruptFileError(f"{weights}: its meta.model_config is not a model configuration ({e})") from e
    model = build_model(model_cfg)
    load_weights_strict(model, state["ema"], f"{weights}")
    return model.to(device).eval(), model_cfg, int(state["step"])


def sample_set(weights: Path, out_npz: Path, shard_dir: Path, *, sp: cfgmod.SampleParams, seed: int,
               num_classes: int, resolution: int, device_req: str, desc: str, expected_step: int | None = None,
               expected_name: str | None = None, loader: Callable[[torch.device], tuple] | None = None) -> int:
    """Sample sp.num_images images from `weights` into out_npz, resumably, across all processes of the world.

    Returns the training step of the weights (checked against `expected_step` when given); out_npz records it as
    `train_step` beside ADM's `arr_0` and the `labels`. `loader(device) -> (model, model_config, step)` replaces
    `load_ema_model` for weights in another format (the released official checkpoints). The set is assembled shard
    by shard: no process ever holds all of it (50,000 images at 512 px are ~39 GB).
    """

    dist_info = init_distributed(device_req)
    if dist_info.is_main:  # shards + the assembled npz, uncompressed uint8
        check_free_space(out_npz.parent, 2 * sp.num_images * resolution * resolution * 3, f"{desc} (samples)")
    model, model_cfg, train_step = (loader(dist_info.device) if loader is not None else
                                    load_ema_model(weights, dist_info.device, expected_step, expected_name))
    run_key = _common.fingerprint({"sample": cfgmod.to_dict(sp), "seed": seed, "num_classes": num_classes,
                                   "resolution": resolution, "weights": _common.file_digest(weights)})
    if dist_info.is_main:
        marker = shard_dir / "fingerprint.txt"
        if marker.exists() and marker.read_text().strip() != run_key:
            shutil.rmtree(shard_dir)  # shards of other weights or settings: never mix them in
        # a killed run's half-written shard or sample set (no process of this stage writes yet)
        _common.remove_temporaries(shard_dir)
        _common.remove_temporaries(out_npz.parent, names=(out_npz.name,))
        atomic_write_text(marker, run_key + "\n")
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
        labels = np.concatenate([load_npz(shard_dir / f"shard_{k:05d}.npz", ["labels"])["labels"] for k, _ in shards])
        if labels.shape[0] != n:
            raise CorruptFileError(f"{shard_dir}: shards hold {labels.shape[0]} images, expected {n}")
        write_images_streaming(out_npz, (load_npz(shard_dir / f"shard_{k:05d}.npz", ["arr_0"])["arr_0"]
                                         for k, _ in shards), (n, resolution, resolution, 3),
                               labels=labels, train_step=np.asarray(train_step, dtype=np.int64))
    cleanup()
    return train_step


def _shard_ok(path: Path, expected: int) -> bool:
    if not path.exists():
        return False
    try:
        return load_npz(path, ["arr_0"])["arr_0"].shape[0] == expected
    except CorruptFileError:
        path.unlink()
        return False
