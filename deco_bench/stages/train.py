"""Stage `train@<model>`: train one variant of `models` (DeCo, baseline or an ablation) and keep its EMA weights.

Outputs in runs/<model>/: final.pt (EMA weights), eval_ckpts/ (EMA weights on train.eval_ckpt_steps, for the
convergence curve), ckpt/ (rotated resume points; DVC keeps them between runs), train_log.jsonl and
train_curve.json (loss, images/s per logged step); metrics/train/<model>.json (summary, DVC metrics).

Killed at any point (even SIGKILL), the same command resumes from the last checkpoint and ends with the weights
an uninterrupted run would have. Changing a parameter that changes the training trajectory starts over.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from deco_bench import config as cfgmod
from deco_bench.io import CorruptFileError, atomic_write_json, check_free_space, load_npz
from deco_bench.stages import _common
from deco_bench.training import checkpoint as ckpt
from deco_bench.training.distributed import cleanup, init_distributed
from deco_bench.training.loop import LOG_NAME, train

# Parameters that do not change the training trajectory: changing them resumes instead of starting over.
NON_TRAJECTORY_KEYS = ("steps", "eval_ckpt_steps", "ckpt_every", "keep_last", "log_every", "compile", "num_workers")


def load_dataset(p: cfgmod.Params, data_dir: Path):
    if p.data.source == "embedded":
        from deco_bench.data import ArrayDataset

        arrays = load_npz(data_dir / "train.npz", ["images", "labels"])
        return ArrayDataset(arrays["images"], arrays["labels"])
    from deco_bench.data.imagenet import ImageFolderDataset, resolve_imagenet_root

    return ImageFolderDataset(resolve_imagenet_root(p.data.imagenet_root), p.data.resolution,
                              on_bad_image=p.data.on_bad_image)


def build_encoder(p: cfgmod.Params, model_cfg):
    from deco_bench.diffusion.encoders import build_encoder as build

    return build(p.train.repa_encoder, weights_path=p.train.repa_encoder_weights or None,
                 image_size=p.data.resolution, patch_size=model_cfg.patch_size, seed=p.run.seed)


def trajectory_meta(p: cfgmod.Params, name: str, model_cfg) -> dict:
    train = {k: v for k, v in cfgmod.to_dict(p.train).items() if k not in NON_TRAJECTORY_KEYS}
    trajectory = {"model": cfgmod.to_dict(model_cfg), "entry": cfgmod.to_dict(p.model(name)), "train": train,
                  "data": cfgmod.to_dict(p.data), "seed": p.run.seed}  # not the process count: see loop.py
    return {"fingerprint": _common.fingerprint(trajectory), "model_config": cfgmod.to_dict(model_cfg),
            "model_name": name}


def reconcile_outputs(run_dir: Path, meta: dict, eval_steps: list[int]) -> str:
    """Decide how the previous state of run_dir is reused; returns a one-line note for the log."""
    ckpt_dir, eval_dir = run_dir / "ckpt", run_dir / "eval_ckpts"
    found = ckpt.list_checkpoints(ckpt_dir)
    if not found:
        shutil.rmtree(eval_dir, ignore_errors=True)
        return "starting from scratch"
    try:
        latest = ckpt.load_checkpoint(found[-1][1])
    except Exception as e:  # an unreadable newest checkpoint: drop it, fall back to the previous one
        found[-1][1].unlink()
        return f"dropped unreadable checkpoint {found[-1][1].name} ({e}); " + reconcile_outputs(run_dir, meta, eval_steps)
    if latest.get("meta", {}).get("fingerprint") != meta["fingerprint"]:
        for sub in ("ckpt", "eval_ckpts"):
            shutil.rmtree(run_dir / sub, ignore_errors=True)
        (run_dir / LOG_NAME).unlink(missing_ok=True)
        return "parameters changed since the last checkpoint: starting over"
    # A newly scheduled evaluation checkpoint earlier than the newest resume point: rewind to a resume point at or
    # before it (the trajectory is deterministic, so re-running those steps reproduces them exactly).
    have = {s for s, _ in ckpt.list_checkpoints(eval_dir)}
    missing = [s for s in eval_steps if s not in have and s <= found[-1][0]]
    if missing:
        for s, f in found:
            if s > missing[0]:
                f.unlink()
        return f"rewinding to produce evaluation checkpoint(s) {missing}"
    return f"resuming from step {found[-1][0]}"


def run(params_path: str, name: str, data_dir: Path, out: Path, summary_path: Path) -> None:
    p = _common.setup(params_path)
    _common.relaunch_with_torchrun(p, "deco_bench.stages.train", sys.argv[1:])
    from deco_bench.models import build_model, count_parameters

    entry = p.model(name)
    model_cfg = cfgmod.model_config(p, name)
    dist_info = init_distributed(p.run.device)
    meta = trajectory_meta(p, name, model_cfg)
    torch.manual_seed(p.run.seed)  # model initialisation is part of the run's definition
    net = build_model(model_cfg)
    if dist_info.is_main:  # resume checkpoints (weights + EMA + 2 AdamW moments) + eval checkpoints, float32
        n_bytes = 4 * count_parameters(net)  # checked before reconcile_outputs touches anything in `out`
        check_free_space(out, n_bytes * (4 * (p.train.keep_last + 1) + len(p.train.eval_ckpt_steps) + 1),
                         f"train@{name} (checkpoints)")
    note = reconcile_outputs(out, meta, list(p.train.eval_ckpt_steps)) if dist_info.is_main else ""
    from deco_bench.training.distributed import barrier

    barrier()
    dataset = load_dataset(p, data_dir)
    init_state = None
    if entry.init_from:
        from deco_bench.io import safe_torch_load

        init_state = safe_torch_load(entry.init_from).get("ema")
        if init_state is None:
            raise CorruptFileError(f"{entry.init_from}: models.{name}.init_from needs a deco-bench EMA weights file "
                                   f"(final.pt or eval_ckpts/step_*.pt)")
    encoder = build_encoder(p, model_cfg) if entry.repa_weight > 0 else None
    if dist_info.is_main:
        print(f"train@{name}: {entry.preset} ({count_parameters(net) / 1e6:.3f}M params), {len(dataset)} images, "
              f"{p.train.steps} steps x {p.train.global_batch}, world {dist_info.world_size}; {note}", file=sys.stderr)
    bar = _common.progress_bar(p.train.steps, f"train {name}", unit="step", disable=not dist_info.is_main)
    try:
        result = train(net, dataset, tp=p.train, entry=entry, seed=p.run.seed, out_dir=out, dist_info=dist_info,
                       encoder=encoder, null_label=model_cfg.num_classes, meta=meta,
                       progress=lambda done, total: bar.update(done - bar.n), init_state=init_state)
    finally:  # end the bar's line, so a pre-emption or error message starts a line of its own
        bar.close()
    if dist_info.is_main:
        log = result.log
        last = log[-1] if log else {}
        speeds = [r["images_per_s"] for r in log[1:]] or [r["images_per_s"] for r in log]
        atomic_write_json(out / "train_curve.json", [
            {k: r[k] for k in ("step", "loss", "fm", "freqfm", "repa", "images_per_s", "elapsed_s") if k in r}
            for r in log])
        atomic_write_json(summary_path, {
            "model": name, "preset": entry.preset, "params_m": count_parameters(net) / 1e6, "steps": result.step,
            "final_loss": last.get("loss"), "images_per_s_median": float(np.median(speeds)) if speeds else None,
            "wall_s": last.get("elapsed_s"), "device": str(dist_info.device), "world_size": dist_info.world_size,
            "resumed_from": result.resumed_from,
        })
        _common.write_resolved(out / "params.json", p, model=name, model_config=meta["model_config"])
    cleanup()


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--model", required=True, help="a key of `models` in params.yaml")
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--out", type=Path, default=None, help="default: runs/<model>")
    ap.add_argument("--summary", type=Path, default=None, help="default: metrics/train/<model>.json")
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args.params, args.model, args.data, args.out or Path("runs") / args.model,
                                     args.summary or Path("metrics/train") / f"{args.model}.json"))


if __name__ == "__main__":
    main()
