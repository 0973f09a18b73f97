"""clean-fid as an independent cross-check of our FID (api.compute_metrics, torch-fidelity's Inception port).

Everything that makes a FID number comes from clean-fid here, not from our code: its TorchScript Inception
(NVlabs' `inception-2015-12-05.pt`, the StyleGAN2-ADA port of the TF 2015-12-05 graph), its feature extractor
(`cleanfid.features.build_feature_extractor`), its per-mode resizer (`cleanfid.resize.build_resizer`), its
array -> tensor conversion (as in `cleanfid.utils.ResizeDataset`) and its Fréchet distance (`cleanfid.fid.
fid_from_feats`: np.cov + scipy sqrtm). Only the image stream is ours (ADM .npz via adm_npz.iter_image_batches). So
a gap between this number and our FID points at weights, resizing or the Fréchet maths in one of the two chains.
clean-fid's README (v0.1.35, "Backwards Compatibility") states that mode="legacy_tensorflow" differs from the
original TF FID code (bioinf-jku/TTUR) by ~2e-05 FID; how close torch-fidelity's port is to it on real weights is
measured, not assumed.

Offline: clean-fid's extractor builds `InceptionV3W("/tmp", download=True)`, which downloads the file from the NVIDIA
CDN into /tmp when absent. We call build_feature_extractor with `cleanfid.features.InceptionV3W` temporarily replaced
by a factory that loads OUR verified local file with download=False, so clean-fid keeps its own mode -> model
mapping and no network is touched. The file is TorchScript (code as well as weights, run when it is loaded), so it
is loaded only when its sha256 is the one pinned in the manifest (deco_bench/metrics/weights.py); any other file is
refused (ChecksumError) before clean-fid or torch sees it.

Modes: "legacy_tensorflow" (default: resizing to 299 inside the graph, as the TF code and ADM's evaluator do) and
"clean" (PIL bicubic to 299 outside). "legacy_pytorch" needs pytorch-fid's weights and is not offered.

    python -m deco_bench.metrics.cleanfid_backend SAMPLES.npz REF.npz --weights inception-2015-12-05.pt
"""

from __future__ import annotations

import argparse
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from deco_bench.metrics import adm_npz, weights

MODES = ("legacy_tensorflow", "clean")
CLEANFID_FILENAME = "inception-2015-12-05.pt"  # InceptionV3W appends this name to the folder it is given


@contextmanager
def _local_inception(weights_path: Path) -> Iterator[None]:
    """Within the block, clean-fid's feature extractor loads `weights_path` and never downloads."""
    import cleanfid.features as cf
    from cleanfid.inception_torchscript import InceptionV3W

    with tempfile.TemporaryDirectory() as tmp:
        folder = weights_path.parent
        if weights_path.name != CLEANFID_FILENAME:  # InceptionV3W only takes a folder: link the file under its name
            folder = Path(tmp)
            os.symlink(weights_path.resolve(), folder / CLEANFID_FILENAME)

        def local(path, download=True, resize_inside=False):
            return InceptionV3W(str(folder), download=False, resize_inside=resize_inside)

        original = cf.InceptionV3W
        cf.InceptionV3W = local
        try:
            yield
        finally:
            cf.InceptionV3W = original


def load_feature_model(weights_path: str | os.PathLike | None, *, mode: str = "legacy_tensorflow",
                       device: str | torch.device | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """clean-fid's feature function for `mode` (float (b, 3, H, W) in [0, 255] -> (b, 2048)), from a local file.

    The file must have the manifest's pinned sha256, checked before anything loads it (a TorchScript file runs
    code when loaded): another file is refused with weights.ChecksumError.
    """
    from cleanfid.features import build_feature_extractor

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    path = weights.resolve(weights.INCEPTION_CLEANFID, weights_path)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    with _local_inception(path):
        return build_feature_extractor(mode, device=device, use_dataparallel=False)


def _to_cleanfid_batch(images: np.ndarray, resize) -> torch.Tensor:
    """uint8 (b, H, W, 3) -> what clean-fid's ResizeDataset yields per image, stacked: resize the HWC array, then
    torchvision ToTensor (uint8 results: /255 then *255 as clean-fid does; float32 results: values as they are)."""
    import torchvision

    to_tensor = torchvision.transforms.ToTensor()
    out = []
    for img in images:
        resized = resize(np.array(img))
        out.append(to_tensor(np.array(resized)) * 255 if resized.dtype == np.uint8 else to_tensor(resized))
    return torch.stack(out)


def features_from_npz(path: str | os.PathLike, model: Callable, *, mode: str = "legacy_tensorflow",
                      batch_size: int = 50, device: str | torch.device | None = None) -> np.ndarray:
    """clean-fid features (n, 2048) of all images (`arr_0`) of an ADM .npz, read a batch at a time."""
    from cleanfid.fid import get_batch_features
    from cleanfid.resize import build_resizer

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    resize = build_resizer(mode)
    parts = [get_batch_features(_to_cleanfid_batch(batch, resize), model, device)
             for batch in adm_npz.iter_image_batches(path, batch_size)]
    if not parts:
        raise adm_npz.TooFewImagesError(f"{path}: holds no images")
    return np.concatenate(parts)


def cleanfid_fid(samples_npz: str | os.PathLike, reference_npz: str | os.PathLike, *,
                 weights_path: str | os.PathLike | None, mode: str = "legacy_tensorflow", batch_size: int = 50,
                 device: str | torch.device | None = None) -> float:
    """FID between the images of two ADM .npz files, computed entirely by clean-fid (see the module docstring).

    Both files must hold images (`arr_0`); statistics-only references are refused (reusing ADM's mu/sigma would not
    be an independent check). `weights_path` None looks in the weights cache (weights.resolve).
    """
    if not adm_npz.has_array(reference_npz, adm_npz.IMAGES_KEY):
        raise adm_npz.CorruptFileError(f"{reference_npz}: no arr_0 images; the clean-fid cross-check extracts the "
                                       "reference's features itself")
    from cleanfid.fid import fid_from_feats

    model = load_feature_model(weights_path, mode=mode, device=device)
    feats = [features_from_npz(p, model, mode=mode, batch_size=batch_size, device=device)
             for p in (samples_npz, reference_npz)]
    return float(fid_from_feats(*feats))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="FID of two ADM .npz image batches with clean-fid (offline).")
    parser.add_argument("samples", help="ADM .npz with arr_0 = uint8 (N, H, W, 3)")
    parser.add_argument("reference", help="ADM .npz with arr_0 images")
    parser.add_argument("--weights", required=True, help=f"local {CLEANFID_FILENAME} (clean-fid's TorchScript; "
                                                         "refused unless its sha256 is the pinned one)")
    parser.add_argument("--mode", default="legacy_tensorflow", choices=MODES)
    parser.add_argument("--batch-size", type=int, default=50)
    args = parser.parse_args(argv)
    print(cleanfid_fid(args.samples, args.reference, weights_path=args.weights, mode=args.mode,
                       batch_size=args.batch_size))


if __name__ == "__main__":
    main()
