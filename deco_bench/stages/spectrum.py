"""Stage `spectrum`: paper Fig. 4, the DCT energy of the DiT output and of the pixel velocity, DeCo vs baseline.

Loads the EMA weights of both models, Euler-samples `spectrum.num_images` images with `spectrum.num_steps` steps
(no CFG) and writes spectrum/spectrum.json (curves per model x tensor, per-step curves, high-frequency shares and
the DeCo / baseline ratios) and spectrum/fig4.svg. Library: deco_bench.studies.spectrum.
"""

from __future__ import annotations

import math
from pathlib import Path

from deco_bench import config as cfgmod
from deco_bench import paper
from deco_bench.io import atomic_write_json, atomic_write_text
from deco_bench.report.svg import Series, line_plot, model_colors
from deco_bench.stages import _common
from deco_bench.stages._sampling import load_ema_model
from deco_bench.studies.spectrum import NUM_COEFFS, capture_spectra
from deco_bench.training.distributed import resolve_device


def ratios(tensors: dict[str, dict]) -> dict:
    """DeCo / baseline ratio of each single-number summary, per tensor (< 1 on dit_out is the paper's claim)."""
    out = {}
    for tensor in ("dit_out", "velocity"):
        deco, base = tensors["deco"][tensor], tensors["baseline"][tensor]
        out[tensor] = {k: (deco[k] / base[k] if base[k] else None) for k in ("high_share", "mean_log_high")}
    return out


TENSOR_NAMES = {"dit_out": "DiT output", "velocity": "pixel velocity"}
MODEL_NAMES = {"deco": "DeCo", "baseline": "Baseline"}


def fig4_svg(curves: dict[tuple[str, str], list[float]], *, title: str, colors: dict[str, str]) -> str:
    """Paper Fig. 4(a) drawn with the report's plotter: x = zig-zag DCT index 0..63, y = normalised log energy in
    [0, 1]; one line per (model, tensor), the DiT output solid and the pixel velocity dashed, in the model's colour."""
    series = []
    for (model, tensor), values in curves.items():
        values = [float(v) for v in values]
        if len(values) != NUM_COEFFS or not all(math.isfinite(v) for v in values):
            raise ValueError(f"curve {(model, tensor)} must have {NUM_COEFFS} finite values")
        series.append(Series(f"{MODEL_NAMES.get(model, model)} {TENSOR_NAMES[tensor]}", list(range(NUM_COEFFS)),
                             values, style="solid" if tensor == "dit_out" else "dashed", markers=False,
                             color=colors.get(model), model=model))
    return line_plot(series, title=title, x_label="zig-zag DCT index", y_label="normalised log energy",
                     y_min=0.0, y_max=1.0, x_ticks=list(range(0, NUM_COEFFS, 8)))


def run(params_path: str, weights: dict[str, Path], out_dir: Path) -> None:
    p = _common.setup(params_path)
    sp = p.spectrum
    _common.remove_temporaries(out_dir)

    device = resolve_device(p.run.device)
    results = {}
    for name, path in weights.items():
        model, model_cfg, _ = load_ema_model(path, device, expected_step=p.train.steps)
        results[name] = capture_spectra(model, num_images=sp.num_images, num_steps=sp.num_steps, seed=sp.seed,
                                        num_classes=p.data.num_classes, resolution=p.data.resolution,
                                        batch_size=sp.batch_size, device=device, timeshift=p.sample.timeshift,
                                        null_label=model_cfg.num_classes, cut=sp.cut)
    tensors = {name: r["tensors"] for name, r in results.items()}
    atomic_write_json(out_dir / "spectrum.json", {
        "scale": p.run.scale, "profile": p.run.profile, "resolution": p.data.resolution,
        "num_images": sp.num_images, "num_steps": sp.num_steps, "seed": sp.seed, "cut": sp.cut,
        "times": results["deco"]["times"], "block": "one channel of one 8x8 window, per image and step",
        "models": tensors, "ratio_deco_over_baseline": ratios(tensors),
        "paper": {"fig4_high_plateau": paper.FIG4, "protocol": "10K images x 100 steps, 8x8 DCT (docs/paper.md §4)"}})
    curves = {(m, t): tensors[m][t]["curve"] for m in tensors for t in ("dit_out", "velocity")}
    title = f"DCT energy, {sp.num_images} images x {sp.num_steps} steps ({p.run.scale} scale)"
    atomic_write_text(out_dir / "fig4.svg", fig4_svg(curves, title=title, colors=model_colors(p.models)))
    _common.write_resolved(out_dir / "params.json", p, spectrum=cfgmod.to_dict(sp))


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--deco", type=Path, default=Path("runs/deco/final.pt"))
    ap.add_argument("--baseline", type=Path, default=Path("runs/baseline/final.pt"))
    ap.add_argument("--out", type=Path, default=Path("spectrum"))
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args.params, {"deco": args.deco, "baseline": args.baseline}, args.out))


if __name__ == "__main__":
    main()
