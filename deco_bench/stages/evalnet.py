"""Stage `evalnet`: the evaluation feature network of the embedded scale.

Inception weights cannot be loaded offline, so embedded-scale FD/IS/precision/recall/KID are measured in the
feature space of a small classifier trained here on the embedded training images (never the REPA encoder). Those
metrics carry their own names (fd_embed, ...), never "FID". With evaluate.feature_space = inception this stage
only records that it is not used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deco_bench.config import to_dict
from deco_bench.io import atomic_write_json, atomic_write_text, load_npz
from deco_bench.metrics import save_feature_net, train_feature_net
from deco_bench.metrics.embed_net import extract
from deco_bench.stages import _common


def run(params_path: str, data_dir: Path, out: Path) -> None:
    p = _common.setup(params_path)
    _common.remove_temporaries(out)
    if p.evaluate.feature_space != "embed":
        atomic_write_json(out / "info.json", {"used": False, "reason": "evaluate.feature_space is inception"})
        atomic_write_text(out / "net.pt", "")  # declared output; empty = not used
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


def main() -> None:
    ap = _common.parser(__doc__)
    ap.add_argument("--data", type=Path, default=Path("data"))
    ap.add_argument("--out", type=Path, default=Path("runs/evalnet"))
    args = ap.parse_args()
    _common.main_wrapper(lambda: run(args.params, args.data, args.out))


if __name__ == "__main__":
    main()
