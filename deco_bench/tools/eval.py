"""`deco-bench eval SAMPLES.npz REF.npz`: ADM's evaluator (guided-diffusion evaluations/evaluator.py) in PyTorch.

Scores any ADM-format sample batch (uint8 NHWC `arr_0`: ours, the official DeCo output, another paper's file)
against a reference batch (e.g. ADM's VIRTUAL_imagenet256_labeled.npz) and prints the five lines ADM's evaluator
prints (Inception Score, FID, sFID, Precision, Recall). The numbers come from the same code as every stage
(deco_bench.metrics: torch-fidelity's port of the TF Inception graph, run in float64); --json also writes
bootstrap intervals and the protocol (file hashes, image count, IS ordering, hardware).

IS and file order: ADM scores blocks of 5,000 consecutive images. When the file is sorted by class (its labels come
in per-class runs, or consecutive blocks predict different classes) the command says so on stderr and reports IS
both in file order (what ADM reports) and under a fixed permutation (deco_bench/metrics/ordering.py).

--compare-adm prints our values beside the ones ADM documents for its own sample batch
(admnet_guided_upsampled_imagenet256.npz against VIRTUAL_imagenet256_labeled.npz), with the differences: the check
that this port computes what ADM computes (README, "Score any sample file").

Exit status: 0 scored; 2 a bad input (one line naming the file and the problem).
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import deco_bench
from deco_bench.io import DecoBenchError, MissingFileError, atomic_write_json, load_npz, sha256_cached
from deco_bench.metrics import adm_npz, api, ordering, weights
from deco_bench.metrics.features import extract_npz
from deco_bench.metrics.inception import InceptionFeatures
from deco_bench.metrics.isc import ADM_SPLIT_SIZE

# What ADM's README (guided-diffusion, evaluations/README.md) documents for admnet_guided_upsampled_imagenet256.npz
# against VIRTUAL_imagenet256_labeled.npz.
ADM_DOCUMENTED = {"is": 215.8370361328125, "fid": 3.9425574129223264, "sfid": 6.140433703346162,
                  "precision": 0.8265, "recall": 0.5309}
ADM_SAMPLE_BATCH = "admnet_guided_upsampled_imagenet256.npz"
ADM_SAMPLE_BATCH_URL = ("https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/256/"
                        "admnet_guided_upsampled_imagenet256.npz")
LINES = [("Inception Score", api.IS), ("FID", api.FID), ("sFID", api.SFID), ("Precision", api.PRECISION),
         ("Recall", api.RECALL)]
LABEL_KEYS = ("arr_1", "labels")  # ADM's name for a labelled batch's classes, then deco-bench's


class _Progress:
    """An extractor that advances a progress bar (stderr) by each batch it sees; same identity, same features."""

    def __init__(self, inner, bar):
        self.inner, self.bar, self.identity = inner, bar, inner.identity

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        out = self.inner(images)
        self.bar.update(len(images))
        return out


def _check_samples(path: Path) -> int:
    """Header checks (layout, dtype, at least MIN_IMAGES images) before the Inception network is even built."""
    shape, dtype = adm_npz.array_info(path)
    n = int(shape[0]) if len(shape) else 0
    if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3:
        next(adm_npz.iter_image_batches(path, 64), None)  # raises SampleFormatError, with values for float data
    if n < api.MIN_IMAGES:
        raise adm_npz.TooFewImagesError(f"{path}: holds {n} image(s); every metric needs at least {api.MIN_IMAGES}")
    return n


def _labels(path: Path, n: int) -> np.ndarray | None:
    for key in LABEL_KEYS:
        if adm_npz.has_array(path, key):
            labels = load_npz(path, [key])[key].reshape(-1)
            return labels if labels.shape[0] == n else None
    return None


def evaluate(samples: Path, reference: Path, inception_weights: Path, *, inception_sha256: str | None = "manifest",
             bootstrap: int = 100, batch_size: int = 50, cache_dir: Path | None = None, seed: int = 0,
             progress: bool = True) -> dict:
    """Every number `deco-bench eval` prints and writes: metrics, intervals, the ordering verdict, the protocol."""
    n = _check_samples(samples)
    if not reference.is_file():
        raise MissingFileError(f"{reference}: reference batch not found")
    api.check_sample_set(samples, reference, n)
    path = weights.resolve(weights.INCEPTION, inception_weights, expected_sha256=inception_sha256)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    net = InceptionFeatures(path, device=device)
    ref_n = adm_npz.num_images(reference) if adm_npz.has_array(reference, adm_npz.IMAGES_KEY) else 0
    with tqdm(total=n + ref_n, desc="Inception features", unit="img", file=sys.stderr, disable=not progress,
              dynamic_ncols=True, mininterval=1.0) as bar:
        extractor = _Progress(net, bar)
        feats = extract_npz(samples, extractor, num_images=n, batch_size=batch_size, cache_dir=cache_dir)
        ref = api.reference_from_npz(reference, extractor, batch_size=batch_size, cache_dir=cache_dir)
    if progress and bootstrap:
        print(f"bootstrap: {bootstrap} resamples of the {n} samples", file=sys.stderr)
    out = api.compute_all(feats, ref, names=api.INCEPTION_NAMES, bootstrap=bootstrap, seed=seed)
    order = ordering.detect(_labels(samples, n), feats["logits"])
    result = {"metrics": out["metrics"], "ci": out["ci"], "skipped": out["skipped"], "num_images": n,
              "ordering": order.as_dict()}
    if order.class_sorted:
        result["is_file_order"] = out["metrics"][api.IS]
        result["is_permuted"] = ordering.permuted_inception_score(feats["logits"])
    result["protocol"] = {
        "evaluator": "deco-bench eval (ADM evaluator protocol in PyTorch)", "deco_bench": deco_bench.__version__,
        "extractor": net.identity, "samples": str(samples), "samples_sha256": sha256_cached(samples),
        "reference": str(reference), "reference_sha256": sha256_cached(reference), "reference_images": ref_n,
        "num_images": n, "is_split_size": ADM_SPLIT_SIZE,
        "is_ordering": "file order (ADM)" + (f"; also permuted (default_rng({ordering.PERMUTATION_SEED}))"
                                             if order.class_sorted else ""),
        "bootstrap_replicates": bootstrap, "bootstrap_seed": seed,
        "hardware": {"device": device, "torch": torch.__version__, "python": platform.python_version(),
                     "machine": platform.machine()},
    }
    return result


def _line(label: str, key: str, result: dict) -> str:
    if key in result["metrics"]:
        return f"{label}: {result['metrics'][key]}"
    return f"{label}: not computed ({result['skipped'].get(key, 'not available')})"


def _compare_adm(result: dict) -> list[str]:
    rows = [f"{'':16}{'ours':>14}{'ADM':>14}{'difference':>14}"]
    for label, key in LINES:
        if key in result["metrics"]:
            ours, theirs = result["metrics"][key], ADM_DOCUMENTED[key]
            rows.append(f"{label:16}{ours:>14.4f}{theirs:>14.4f}{ours - theirs:>+14.4f}")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="deco-bench eval", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("samples", type=Path, help="sample batch: .npz with arr_0 uint8 (N, H, W, 3)")
    ap.add_argument("reference", type=Path, help="reference batch, e.g. VIRTUAL_imagenet256_labeled.npz")
    ap.add_argument("--inception-weights", type=Path, required=True,
                    help="torch-fidelity's weights-inception-2015-12-05-6726825d.pth (same bytes as pytorch-fid's "
                         "pt_inception-2015-12-05-6726825d.pth)")
    ap.add_argument("--inception-sha256", default="manifest",
                    help="sha256 the weights must have: 'manifest' (default: the published one), a hash, or 'none'")
    ap.add_argument("--json", type=Path, default=None, help="also write metrics, intervals and protocol here")
    ap.add_argument("--bootstrap", type=int, default=100, help="bootstrap resamples for the intervals (0: none)")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--cache-dir", type=Path, default=None, help="reuse Inception features across runs (by content)")
    ap.add_argument("--compare-adm", action="store_true",
                    help=f"also print ADM's documented values for {ADM_SAMPLE_BATCH} and the differences")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = ap.parse_args(argv)
    sha = None if args.inception_sha256.lower() == "none" else args.inception_sha256
    try:
        if args.bootstrap < 0 or args.batch_size < 1:
            raise DecoBenchError("--bootstrap must be >= 0 and --batch-size >= 1")
        result = evaluate(args.samples, args.reference, args.inception_weights, inception_sha256=sha,
                          bootstrap=args.bootstrap, batch_size=args.batch_size, cache_dir=args.cache_dir,
                          progress=not args.quiet)
        if args.json is not None:
            atomic_write_json(args.json, result)
    except DecoBenchError as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    except OSError as e:  # unreadable path, a folder given as a file, disk full on --json
        print(f"error: {e.filename or args.samples}: {e.strerror or e}", file=sys.stderr)
        return 2
    if result["ordering"]["class_sorted"]:
        print(f"notice: {args.samples} is sorted by class ({result['ordering']['evidence']}). ADM's evaluator scores "
              f"consecutive blocks of {ADM_SPLIT_SIZE} images, so its IS is deflated; IS in file order "
              f"{result['is_file_order']:.4f}, under a fixed permutation {result['is_permuted']:.4f}",
              file=sys.stderr)
    for label, key in LINES:
        print(_line(label, key, result))
    if args.compare_adm:
        print("\n".join(_compare_adm(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

