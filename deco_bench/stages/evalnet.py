"""Stage `evalnet`: the evaluation feature network of the embedded scale.

Inception weights cannot be loaded offline, so embedded-scale FD/IS/precision/recall/KID are measured in the
feature space of a small classifier trained here on the embedded training images (never the REPA encoder). Those
metrics carry their own names (fd_embed, ...), never "FID". With evaluate.feature_space = inception this stage
only records that it is not used.

metrics/evalnet/real.json (DVC metrics, numbers only): the real-vs-real floor and ceiling every model's numbers are
read against: `class_accuracy_real` (with its interval bounds) and `fd_embed_floor` of sample.num_images held-out
real crops (data/heldout.npz), scored as a sample set is. runs/evalnet/real.json holds the whole result (every
metric, every interval -- the floor's too, which the metrics file leaves out: resampling duplicates images, so it is
biased upwards near zero and can lie above the value --, the bootstrap replicates, the image count).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deco_bench.config import to_dict
from deco_bench.io import atomic_write_json, atomic_write_metrics, atomic_write_text, load_npz
from deco_bench.metrics import evaluate_samples, save_feature_net, train_feature_net
from deco_bench.metrics.api import CLASS_ACCURACY, FD_EMBED
from deco_bench.metrics.embed_net import extract
from deco_bench.stages import _common


def run(params_path: str, data_dir: Path, out: Path, metrics: Path | None = None) -> None:
    p = _common.setup(params_path)
    metrics = metrics if metrics is not None else data_dir.parent / "metrics" / "evalnet" / "real.json"
    _common.remove_temporaries(out)
    _common.remove_temporaries(metrics.parent, names=(metrics.name,))
    if p.evaluate.feature_space != "embed":
        atomic_write_json(out / "info.json", {"used": False, "reason": "evaluate.feature_space is inception"})
        atomic_write_text(out / "net.pt", "")  # declared output; empty = not used
        atomic_write_metrics(metrics, {})  # declared metrics; the floor is an embedded-scale measure
        return

    train = load_npz(data_dir / "train.npz", ["images", "labels"])
    ref = load_npz(data_dir / "reference.npz", ["arr_0", "labels"])
    model, info = train_feature_net(train["images"], train["labels"], epochs=p.evaluate.evalnet_epochs,
                                    seed=p.run.seed, width=p.evaluate.evalnet_width)
    # Held-out accuracy on the reference crops: a feature space that cannot tell the classes apart would make
    # every FD/IS/PR number meaningless, so the report shows it.
    predicted = extract(model, ref["arr_0"])["logits"].argmax(1)
    info = {**to_dict(info), "reference_accuracy": float(np.mean(predicted == ref["labels"])),
            "num_classes": int(ref["labels"].max()) + 1}
    save_feature_net(model, out / "net.pt", info)
    atomic_write_json(out / "info.json", {"used": True, **info})
    detail = real_vs_real(out / "net.pt", data_dir, p)
    atomic_write_json(out / "real.json", detail)
    atomic_write_metrics(metrics, {k: detail[k] for k in METRIC_KEYS if k in detail})


# what metrics/evalnet/real.json holds (DVC metrics); runs/evalnet/real.json holds all of real_vs_real
METRIC_KEYS = ("class_accuracy_real", "class_accuracy_real_lo", "class_accuracy_real_hi", "fd_embed_floor")


def real_vs_real(net_path: Path, data_dir: Path, p) -> dict:
    """The floor and the ceiling of the embedded evaluation: held-out real crops (data/heldout.npz, as many as a
    sample set and ordered like one) scored exactly as a model's samples are, against the same reference.
    class_accuracy_real: the evaluation network's class accuracy on them (what a perfect model would get);
    fd_embed_floor: their FD to the reference (what a perfect model would get, with the same number of images)."""
    result = evaluate_samples(data_dir / "heldout.npz", data_dir / "reference.npz", feature_space="embed",
                              feature_net_path=net_path, num_images_expected=p.sample.num_images,
                              bootstrap=p.evaluate.bootstrap, seed=p.run.seed, batch_size=p.evaluate.batch_size,
                              allow_subset=True)
    numbers = {"class_accuracy_real": result["metrics"][CLASS_ACCURACY], "fd_embed_floor": result["metrics"][FD_EMBED]}
    for name, key in (("class_accuracy_real", CLASS_ACCURACY), ("fd_embed_floor", FD_EMBED)):
        if key in result["ci"]:
            numbers[f"{name}_lo"], numbers[f"{name}_hi"] = result["ci"][key]
    return {**numbers, "num_images": result["num_images"], "evaluation": to_dict(result)}


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--out", type=Path, default=Path("runs/evalnet"))
    ap.add_argument("--metrics", type=Path, default=Path("metrics/evalnet/real.json"),
                    help="class_accuracy_real with its interval and fd_embed_floor (DVC metrics)")
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args.params, args.data, args.out, args.metrics))


if __name__ == "__main__":
    main()
