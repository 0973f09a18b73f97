"""Stage `train@<model>`: train one variant of `models` (DeCo, baseline or an ablation) and keep its EMA weights.

Outputs in runs/<model>/: final.pt (EMA weights), eval_ckpts/ (EMA weights on train.eval_ckpt_steps, for the
convergence curve), ckpt/ (rotated resume points; DVC keeps them between runs), train_log.jsonl, params.json
(resolved parameters, preset, device, the step it resumed from); the loss curve (--curve, a DVC plot; the pipeline
puts it in plots/train/<model>.json) and metrics/train/<model>.json (numbers only, DVC metrics). The curve and the
summary are rewritten at every logged step, so DVC shows a running experiment's progress (training/progress.py).

Killed at any point (even SIGKILL), the same command resumes from the last checkpoint and ends with the weights
an uninterrupted run would have. Changing a parameter that changes the training trajectory starts over.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from deco_bench import config as cfgmod
from deco_bench.data import ArrayDataset
from deco_bench.data.imagenet import ImageFolderDataset, resolve_imagenet_root
from deco_bench.diffusion.encoders import build_encoder as build
from deco_bench.io import check_free_space, load_npz
from deco_bench.models import build_model, count_parameters
from deco_bench.stages import _common
from deco_bench.training.checkpoint import load_ema_weights
from deco_bench.training.distributed import barrier, cleanup, init_distributed
from deco_bench.training.loop import train
from deco_bench.training.progress import LiveProgress
from deco_bench.training.resume import LOG_NAME, reconcile, trajectory_meta


def load_dataset(p: cfgmod.Params, data_dir: Path):
    if p.data.source == "embedded":
        arrays = load_npz(data_dir / "train.npz", ["images", "labels"])
        return ArrayDataset(arrays["images"], arrays["labels"])

    return ImageFolderDataset(resolve_imagenet_root(p.data.imagenet_root), p.data.resolution,
                              on_bad_image=p.data.on_bad_image)


def build_encoder(p: cfgmod.Params, model_cfg):
    return build(p.train.repa_encoder, weights_path=p.train.repa_encoder_weights or None,
                 image_size=p.data.resolution, patch_size=model_cfg.patch_size, seed=p.run.seed)


def run(params_path: str, name: str, data_dir: Path, out: Path, summary_path: Path, curve_path: Path | None = None) -> None:
    curve_path = curve_path or out / "train_curve.json"
    p = _common.setup(params_path)
    _common.relaunch_with_torchrun(p, "deco_bench.stages.train", sys.argv[1:])

    entry = p.model(name)
    model_cfg = cfgmod.model_config(p, name)
    dist_info = init_distributed(p.run.device)
    meta = trajectory_meta(p, name, model_cfg)
    torch.manual_seed(p.run.seed)  # model initialisation is part of the run's definition
    net = build_model(model_cfg)
    if dist_info.is_main:  # what a killed run left half-written: never resumed from, never a DVC output
        _common.remove_temporaries(out, names=("final.pt", LOG_NAME, "train_curve.json", "params.json"))
        _common.remove_temporaries(out / "ckpt", out / "eval_ckpts")
        _common.remove_temporaries(summary_path.parent, names=(summary_path.name,))
        _common.remove_temporaries(curve_path.parent, names=(curve_path.name,))
    if dist_info.is_main:  # resume checkpoints (weights + EMA + 2 AdamW moments) + eval checkpoints, float32
        n_bytes = 4 * count_parameters(net)  # checked before reconcile touches anything in `out`
        check_free_space(out, n_bytes * (4 * (p.train.keep_last + 1) + len(p.train.eval_ckpt_steps) + 1),
                         f"train@{name} (checkpoints)")
    note = reconcile(out, meta, p.train.steps, list(p.train.eval_ckpt_steps)) if dist_info.is_main else ""

    barrier()
    dataset = load_dataset(p, data_dir)
    init_state = None
    if entry.init_from:
        init_state = load_ema_weights(entry.init_from, f"models.{name}.init_from")["ema"]
    encoder = build_encoder(p, model_cfg) if entry.repa_weight > 0 else None
    if dist_info.is_main:
        print(f"train@{name}: {entry.preset} ({count_parameters(net) / 1e6:.3f}M params), {len(dataset)} images, "
              f"{p.train.steps} steps x {p.train.global_batch}, world {dist_info.world_size}; {note}", file=sys.stderr)
    bar = _common.progress_bar(p.train.steps, f"train {name}", unit="step", disable=not dist_info.is_main)
    live = LiveProgress(summary_path, curve_path, params_m=count_parameters(net) / 1e6)
    try:
        result = train(net, dataset, tp=p.train, entry=entry, seed=p.run.seed, out_dir=out, dist_info=dist_info,
                       encoder=encoder, null_label=model_cfg.num_classes, meta=meta,
                       progress=lambda done, total: bar.update(done - bar.n), init_state=init_state, on_log=live)
    finally:  # end the bar's line, so a pre-emption or error message starts a line of its own
        bar.close()
    if dist_info.is_main:
        live.write_final(result.log, result.step)
        _common.write_resolved(out / "params.json", p, model=name, model_config=meta["model_config"],
                               preset=entry.preset, params_m=live.params_m, device=str(dist_info.device),
                               world_size=dist_info.world_size, resumed_from=result.resumed_from)
    cleanup()


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--model", required=True, help="a key of `models` in params.yaml")
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--out", type=Path, default=None, help="default: runs/<model>")
    ap.add_argument("--summary", type=Path, default=None, help="default: metrics/train/<model>.json")
    ap.add_argument("--curve", type=Path, default=None, help="the loss curve; default: <out>/train_curve.json")
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args.params, args.model, args.data, args.out or Path("runs") / args.model,
                                     args.summary or Path("metrics/train") / f"{args.model}.json", args.curve))


if __name__ == "__main__":
    main()
