"""Stage `evaluate@<model>`: every metric of the ADM protocol with bootstrap intervals, in the run's feature space.

embedded scale: fd_embed, is_embed, precision_embed, recall_embed, kid_embed (the evalnet feature space; never
called FID). paper scale: fid, sfid, is, precision, recall, kid with torch-fidelity's Inception against the ADM
reference batch. Writes evaluation/<model>.json (everything: identity, every metric, its interval and bootstrap
replicates, the extractor; what the report, the ablation stage and the tools read) and metrics/<model>.json (DVC
metrics, numbers only: every metric, and the bounds of the headline ones, metrics.api.flat_metrics).

Cheap checks come first, before any feature is extracted: the model name, the sample count (exactly
sample.num_images), the resolution (data.resolution and the reference's), and the training step the samples were
drawn from (train.steps).
"""

from __future__ import annotations

from pathlib import Path

from deco_bench.config import to_dict
from deco_bench.io import CorruptFileError, atomic_write_json, atomic_write_metrics, load_npz
from deco_bench.metrics import evaluate_samples
from deco_bench.metrics.api import check_sample_set, flat_metrics
from deco_bench.stages import _common
from deco_bench.training.resume import StepMismatchError


def samples_train_step(samples: Path) -> int:
    """The training step recorded in a sample set written by the sample stage."""
    try:
        return int(load_npz(samples, ["train_step"])["train_step"])
    except CorruptFileError as e:
        raise CorruptFileError(f"{samples}: records no training step (written by an older deco-bench?); re-run the "
                               f"sample stage") from e
    except (TypeError, ValueError) as e:
        raise CorruptFileError(f"{samples}: its train_step is not one integer") from e


def run(params_path: str, name: str, samples: Path, data_dir: Path, evalnet: Path, out: Path,
        detail: Path | None = None) -> None:
    """`out`: the DVC metrics file; `detail`: the full result (default: evaluation/<name>.json beside out's folder)."""
    detail = detail if detail is not None else out.parent.parent / "evaluation" / f"{name}.json"
    p = _common.setup(params_path)
    entry = p.model(name)  # an unknown model name fails here, before any work
    _common.remove_temporaries(out.parent, names=(out.name,))
    _common.remove_temporaries(detail.parent, names=(detail.name,))
    reference = Path(p.evaluate.reference) if p.evaluate.reference else data_dir / "reference.npz"
    check_sample_set(samples, reference, p.sample.num_images, resolution=p.data.resolution)
    step = samples_train_step(samples)
    if step != p.train.steps:
        raise StepMismatchError(f"{samples}: drawn from the weights of step {step}, but train.steps is "
                                f"{p.train.steps}; re-run the sample stage")
    result = evaluate_samples(
        samples, reference, feature_space=p.evaluate.feature_space,
        feature_net_path=evalnet if p.evaluate.feature_space == "embed" else None,
        inception_weights=p.evaluate.inception_weights or None, num_images_expected=p.sample.num_images,
        bootstrap=p.evaluate.bootstrap, seed=p.run.seed, batch_size=p.evaluate.batch_size,
        cache_dir=Path(".cache/features"), resolution=p.data.resolution)
    result = to_dict(result)
    atomic_write_json(detail, {"model": name, "label": entry.label or name, "scale": p.run.scale,
                               "profile": p.run.profile, "train_step": step, **result})
    atomic_write_metrics(out, flat_metrics(result))


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--model", required=True)
    ap.add_argument("--samples", type=Path, default=None, help="default: runs/<model>/samples.npz")
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--evalnet", type=Path, default=Path("runs/evalnet/net.pt"))
    ap.add_argument("--out", type=Path, default=None, help="DVC metrics, numbers only; default: metrics/<model>.json")
    ap.add_argument("--detail", type=Path, default=None, help="the full result; default: evaluation/<model>.json")
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args.params, args.model, args.samples or Path("runs") / args.model / "samples.npz",
                                     args.data, args.evalnet, args.out or Path("metrics") / f"{args.model}.json",
                                     args.detail or Path("evaluation") / f"{args.model}.json"))


if __name__ == "__main__":
    main()
