"""Metrics API: one extraction pass per feature space, every metric from those features, bootstrap intervals.

    compute_metrics(samples.npz, reference.npz, inception_weights=...)   -> {fid, sfid, is, precision, recall, kid}
    evaluate_samples(..., feature_space='embed'|'inception', ...)        -> metrics + intervals + identity (stages)
    compute_all(sample_features, Reference, names=...)                    -> the pure part, shared by both spaces
    compare(a, b)                                                         -> does DeCo differ from the baseline?
    evaluate_samples(..., dinov2_weights=path)                            -> also fd_dinov2 (FD-DINOv2, optional)

Keys are constants below (shared by stages, report and tests). The embedded feature space has its own names
(fd_embed, ...): a Fréchet distance in a network trained on the embedded data is not FID.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from deco_bench.io import DecoBenchError, load_npz
from deco_bench.metrics import adm_npz, weights
from deco_bench.metrics import bootstrap as bs
from deco_bench.metrics.adm_npz import TooFewImagesError
from deco_bench.metrics.dinov2 import load_extractor as load_dinov2_extractor
from deco_bench.metrics.embed_net import load_feature_extractor
from deco_bench.metrics.features import extract_npz
from deco_bench.metrics.frechet import FeatureStats, FrechetToReference
from deco_bench.metrics.inception import InceptionFeatures
from deco_bench.metrics.isc import ADM_SPLIT_SIZE, inception_score
from deco_bench.metrics.kid import KID_SEED, KID_SUBSET_SIZE, KID_SUBSETS, kid
from deco_bench.metrics.prdc import ADM_K, manifold_membership

FID, SFID, IS, PRECISION, RECALL, KID = "fid", "sfid", "is", "precision", "recall", "kid"
FD_EMBED, IS_EMBED, PRECISION_EMBED, RECALL_EMBED, KID_EMBED = (
    "fd_embed", "is_embed", "precision_embed", "recall_embed", "kid_embed")
FD_DINOV2 = "fd_dinov2"
# The fraction of samples of class c that the evaluation network assigns to c (embedded feature space: its logits
# are the data's classes). Higher is better; the same network's accuracy on held-out real images is its ceiling.
CLASS_ACCURACY = "class_accuracy"
LOWER_IS_BETTER = {FID, SFID, KID, FD_EMBED, KID_EMBED, FD_DINOV2}
# The fewest images every metric can be computed on, on each side: precision/recall take each point's k-th nearest
# neighbour within its own set (k = ADM_K = 3, the point itself not counted), so a set needs k + 1 images; the FD
# covariance and KID's unbiased estimate need 2. A smaller set is refused by name before any extraction.
MIN_IMAGES = ADM_K + 1
BOOTSTRAP_KID_SUBSETS = 10  # per replicate: KID over 100 subsets x 200 replicates would cost more than extraction


@dataclass(frozen=True)
class MetricNames:
    fd: str
    sfd: str | None
    is_: str
    precision: str
    recall: str
    kid: str
    class_acc: str | None = None  # only where the feature network's logits are the samples' classes


INCEPTION_NAMES = MetricNames(FID, SFID, IS, PRECISION, RECALL, KID)
EMBED_NAMES = MetricNames(FD_EMBED, None, IS_EMBED, PRECISION_EMBED, RECALL_EMBED, KID_EMBED, CLASS_ACCURACY)


@dataclass(frozen=True)
class Reference:
    pool: FeatureStats  # FD against these (a file's mu/sigma used as is, else computed from its images)
    spatial: FeatureStats | None  # sFD (Inception only)
    pool_features: np.ndarray | None  # reference images' features: precision/recall/KID need them


def compute_all(samples: dict[str, np.ndarray], ref: Reference, *, names: MetricNames, bootstrap: int = 0,
                seed: int = 0, kid_subsets: int = KID_SUBSETS, kid_subset_size: int = KID_SUBSET_SIZE,
                is_split_size: int = ADM_SPLIT_SIZE, device: str | None = None,
                labels: np.ndarray | None = None) -> dict:
    """Every metric from sample features {'pool', 'logits'[, 'spatial']} against `ref`; optional bootstrap.
    With `labels` (the class each sample was drawn for) and names.class_acc, also the class accuracy.

    Returns {"metrics": {key: float}, "ci": {key: [lo, hi]}, "bootstrap": {key: [replicates]},
    "skipped": {key: reason}}.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    metrics, skipped, fns = {}, {}, {}
    pool = samples.get("pool")
    _check_count("the sample set", 0 if pool is None else len(pool))
    if ref.pool_features is not None:
        _check_count("the reference", len(ref.pool_features))
    fd = _FrechetOfFeatures(pool, ref.pool, device)
    metrics[names.fd], fns[names.fd] = fd.value(), fd
    if names.sfd is not None:
        if ref.spatial is not None and "spatial" in samples:
            sfd = _FrechetOfFeatures(samples["spatial"], ref.spatial, device)
            metrics[names.sfd], fns[names.sfd] = sfd.value(), sfd
        else:
            skipped[names.sfd] = "the reference has no mu_s/sigma_s and no images"
    logits = samples["logits"]
    metrics[names.is_] = inception_score(logits, is_split_size)
    fns[names.is_] = lambda idx: inception_score(logits[idx], is_split_size)
    if ref.pool_features is not None:
        membership = manifold_membership(ref.pool_features, pool, ADM_K)
        metrics[names.precision], metrics[names.recall] = membership.precision(), membership.recall()
        fns[names.precision], fns[names.recall] = membership.precision, membership.recall
        metrics[names.kid] = kid(pool, ref.pool_features, kid_subsets, kid_subset_size, KID_SEED)
        fns[names.kid] = lambda idx: kid(pool[idx], ref.pool_features, BOOTSTRAP_KID_SUBSETS, kid_subset_size,
                                         KID_SEED)
    else:
        for key in (names.precision, names.recall, names.kid):
            skipped[key] = "the reference file holds statistics only (no arr_0 images)"
    if names.class_acc is not None and labels is not None:
        hit = (np.asarray(samples["logits"]).argmax(axis=1) == np.asarray(labels)[:len(samples["logits"])])
        metrics[names.class_acc] = float(hit.mean())
        fns[names.class_acc] = lambda idx: float(hit[idx].mean())
    replicates: dict[str, list[float]] = {k: [] for k in fns}
    if bootstrap > 0:
        for idx in bs.resample_indices(pool.shape[0], bootstrap, seed):
            for key, fn in fns.items():
                replicates[key].append(fn(idx))
    ci = {k: list(bs.percentile_interval(v)) for k, v in replicates.items() if v}
    return {"metrics": metrics, "ci": ci, "bootstrap": {k: v for k, v in replicates.items() if v},
            "skipped": skipped}


def _check_count(what: str, n: int) -> None:
    if n < MIN_IMAGES:
        raise TooFewImagesError(f"{what} has {n} image(s); every metric needs at least {MIN_IMAGES} on each side "
                                f"(precision/recall use each image's {ADM_K}rd nearest neighbour)")


def _mu_sigma(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = FeatureStats.from_features(x)
    return s.mu, s.sigma


class _FrechetOfFeatures:
    """The Fréchet distance of a feature set, and of its bootstrap resamples (called with their indices), to one
    reference. The reference's form (frechet.FrechetToReference) is built once, on first use, and serves the value
    and every replicate. With no more images than feature dimensions (n <= d) both take the exact n x n form, which
    needs no d x d decomposition; otherwise the value is the distance of the float64 statistics (the same
    arithmetic as frechet.frechet_distance)."""

    def __init__(self, features: np.ndarray, ref: FeatureStats, device: str):
        self.features, self.ref, self.device = features, ref, device
        self._to_ref: FrechetToReference | None = None
        self._x: torch.Tensor | None = None

    def _reference(self) -> FrechetToReference:
        if self._to_ref is None:
            self._to_ref = FrechetToReference(self.ref, self.device)
        return self._to_ref

    def value(self) -> float:
        if self.features.ndim == 2 and self.features.shape[0] <= self.features.shape[1]:
            return self._reference().of_features(self.features)
        return self._reference()(*_mu_sigma(self.features))

    def __call__(self, idx: np.ndarray) -> float:
        if self._x is None:
            self._x = torch.as_tensor(self.features, dtype=torch.float64, device=self.device)
        return self._reference().of_features(self._x[torch.as_tensor(idx, device=self.device)])


def fd_with_interval(features: np.ndarray, ref: FeatureStats, *, key: str, bootstrap: int = 0, seed: int = 0,
                     device: str | None = None) -> dict:
    """One Fréchet distance (e.g. fd_dinov2) with bootstrap replicates drawn exactly as in compute_all."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    replicate = _FrechetOfFeatures(features, ref, device)
    value = replicate.value()
    reps = [replicate(idx) for idx in bs.resample_indices(features.shape[0], bootstrap, seed)] if bootstrap > 0 else []
    return {"metrics": {key: value}, "ci": {key: list(bs.percentile_interval(reps))} if reps else {},
            "bootstrap": {key: reps} if reps else {}}


# ------------------------------------------------------------------------------------------------ I/O on top


def reference_from_npz(reference_npz: str | os.PathLike, extractor, *, batch_size: int, cache_dir) -> Reference:
    """A reference batch's statistics (its mu/sigma as stored, else from its images) and its images' features."""
    stats = adm_npz.read_reference_stats(reference_npz)
    feats = None
    if adm_npz.has_array(reference_npz, adm_npz.IMAGES_KEY):
        feats = extract_npz(reference_npz, extractor, num_images=adm_npz.num_images(reference_npz),
                            batch_size=batch_size, cache_dir=cache_dir)
    if stats.pool is None and feats is None:
        raise adm_npz.CorruptFileError(f"{reference_npz}: holds neither mu/sigma nor arr_0 images")
    pool = stats.pool or FeatureStats.from_features(feats["pool"])
    spatial = stats.spatial
    if spatial is None and feats is not None and "spatial" in feats:
        spatial = FeatureStats.from_features(feats["spatial"])
    return Reference(pool=pool, spatial=spatial, pool_features=None if feats is None else feats["pool"])


def _inception(inception_weights, inception_sha256) -> "InceptionFeatures":
    if inception_weights is None:
        raise weights.MissingFileError("feature_space='inception' needs inception_weights (a local file path)")
    path = weights.resolve(weights.INCEPTION, inception_weights, expected_sha256=inception_sha256)
    return InceptionFeatures(path, device="cuda" if torch.cuda.is_available() else "cpu")


def evaluate_samples(samples_npz: str | os.PathLike, reference_npz: str | os.PathLike, *, feature_space: str,
                     feature_net_path: str | os.PathLike | None = None, inception_weights=None,
                     inception_sha256: str | None = "manifest", num_images_expected: int, bootstrap: int = 200,
                     seed: int = 0, batch_size: int = 50, cache_dir: str | os.PathLike | None = None,
                     dinov2_weights: str | os.PathLike | None = None, dinov2_sha256: str | None = "manifest",
                     dinov2_arch: str = "vitl14", resolution: int | None = None,
                     allow_subset: bool = False) -> dict:
    """Score the `num_images_expected` images of an ADM sample batch (the stage entry point).

    The cheap checks of `check_sample_set` come first: the count (a metric on fewer images than asked is never
    reported; a larger file is an error unless `allow_subset`, which scores its first images and says so in the
    result's `subset_of`), and the resolution against `resolution` and the reference's images. With
    `dinov2_weights` (a local official DINOv2 .pth) fd_dinov2 is added, against the reference's images (a
    statistics-only reference skips it).
    """
    check_sample_set(samples_npz, reference_npz, num_images_expected, resolution=resolution,
                     allow_subset=allow_subset)
    if feature_space == "inception":
        extractor, names = _inception(inception_weights, inception_sha256), INCEPTION_NAMES
    elif feature_space == "embed":
        if feature_net_path is None:
            raise weights.MissingFileError("feature_space='embed' needs feature_net_path (the trained EmbedNet)")
        extractor, names = load_feature_extractor(feature_net_path), EMBED_NAMES
    else:
        raise ValueError(f"feature_space must be 'embed' or 'inception', got {feature_space!r}")
    dino = None
    if dinov2_weights is not None:  # resolved before any extraction: a missing or wrong file fails fast

        dino = load_dinov2_extractor(dinov2_weights, arch=dinov2_arch, sha256=dinov2_sha256)
    samples = extract_npz(samples_npz, extractor, num_images=num_images_expected, batch_size=batch_size,
                          cache_dir=cache_dir)
    ref = reference_from_npz(reference_npz, extractor, batch_size=batch_size, cache_dir=cache_dir)
    labels = None
    if adm_npz.has_array(samples_npz, "labels"):
        labels = load_npz(samples_npz, ["labels"])["labels"].reshape(-1)[:num_images_expected]
    out = compute_all(samples, ref, names=names, bootstrap=bootstrap, seed=seed, labels=labels)
    extra = {}
    if dino is not None:
        _add_fd_dinov2(out, samples_npz, reference_npz, dino, num_images=num_images_expected, bootstrap=bootstrap,
                       seed=seed, batch_size=batch_size, cache_dir=cache_dir)
        extra["extractor_dinov2"] = dino.identity
    return {"metrics": out["metrics"], "ci": out["ci"], "bootstrap": out["bootstrap"], "skipped": out["skipped"],
            "num_images": num_images_expected, "subset_of": subset_of(samples_npz, num_images_expected),
            "feature_space": feature_space,
            "extractor": extractor.identity, "bootstrap_replicates": bootstrap, "seed": seed, **extra}


class SampleSetMismatchError(DecoBenchError):
    """A sample set is not the one asked for: another image count, or another resolution than the reference."""


def check_sample_set(samples_npz, reference_npz, num_images: int, *, resolution: int | None = None,
                     allow_subset: bool = False) -> None:
    """Header-only checks of a sample set against what is asked, before any feature is extracted."""
    shape, _ = adm_npz.array_info(samples_npz)
    available = int(shape[0]) if len(shape) else 0
    if num_images < MIN_IMAGES:
        raise TooFewImagesError(f"{samples_npz}: {num_images} image(s) requested; every metric needs at least "
                                f"{MIN_IMAGES} (precision/recall use each image's {ADM_K}rd nearest neighbour): ask "
                                f"for more (sample.num_images, convergence.num_images)")
    if available < num_images:
        raise TooFewImagesError(f"{samples_npz}: holds {available} images, {num_images} were requested; "
                                "refusing to report metrics on fewer images than requested")
    if available > num_images and not allow_subset:
        raise SampleSetMismatchError(f"{samples_npz}: holds {available} images, {num_images} were requested; "
                                     "refusing to score a part of the file silently (ask for all of them, or "
                                     "for an explicit subset)")
    if len(shape) != 4:
        raise adm_npz.SampleFormatError(f"{samples_npz}: expected a (N, H, W, 3) array, got shape {tuple(shape)}")
    size = tuple(int(d) for d in shape[1:3])
    if resolution is not None and size != (resolution, resolution):
        raise SampleSetMismatchError(f"{samples_npz}: images are {size[0]}x{size[1]}, the run's resolution is "
                                     f"{resolution}x{resolution}")
    if adm_npz.has_array(reference_npz, adm_npz.IMAGES_KEY):
        ref_shape, _ = adm_npz.array_info(reference_npz)
        if not ref_shape or ref_shape[0] < MIN_IMAGES:
            raise TooFewImagesError(f"{reference_npz}: the reference holds {ref_shape[0] if ref_shape else 0} "
                                    f"image(s); every metric needs at least {MIN_IMAGES} (data.ref_per_class x "
                                    f"data.num_classes for the embedded reference)")
        ref_size = tuple(int(d) for d in ref_shape[1:3])
        if len(ref_shape) == 4 and ref_size != size:
            raise SampleSetMismatchError(f"{samples_npz}: images are {size[0]}x{size[1]}, the reference "
                                         f"{reference_npz} holds {ref_size[0]}x{ref_size[1]} images")


def subset_of(samples_npz, num_images: int) -> int | None:
    """The file's image count when only its first `num_images` were scored, else None."""
    available = adm_npz.num_images(samples_npz)
    return available if available != num_images else None


def _add_fd_dinov2(out: dict, samples_npz, reference_npz, extractor, *, num_images: int, bootstrap: int, seed: int,
                   batch_size: int, cache_dir) -> None:
    """Add fd_dinov2 (metric, ci, bootstrap) to a compute_all result in place (the reference needs its images)."""
    if not adm_npz.has_array(reference_npz, adm_npz.IMAGES_KEY):
        out["skipped"][FD_DINOV2] = "the reference file holds statistics only (no arr_0 images)"
        return
    ref = extract_npz(reference_npz, extractor, num_images=adm_npz.num_images(reference_npz), batch_size=batch_size,
                      cache_dir=cache_dir)["pool"]
    samples = extract_npz(samples_npz, extractor, num_images=num_images, batch_size=batch_size,
                          cache_dir=cache_dir)["pool"]
    part = fd_with_interval(samples, FeatureStats.from_features(ref), key=FD_DINOV2, bootstrap=bootstrap, seed=seed)
    for k in ("metrics", "ci", "bootstrap"):
        out[k].update(part[k])


def compute_metrics(samples: str | os.PathLike, reference: str | os.PathLike, *, inception_weights,
                    batch_size: int = 50, inception_sha256: str | None = "manifest",
                    cache_dir: str | os.PathLike | None = None, dinov2_weights: str | os.PathLike | None = None,
                    dinov2_sha256: str | None = "manifest", dinov2_arch: str = "vitl14") -> dict[str, float]:
    """ADM protocol on all images of `samples`: {fid, sfid, is[, precision, recall, kid][, fd_dinov2]} as floats.

    precision/recall/kid need the reference's images (arr_0); with a statistics-only reference they are absent.
    `inception_sha256`: "manifest" checks the official weights' sha256; pass another hash, or None to skip.
    fd_dinov2 only when `dinov2_weights` is given (and the reference holds images).
    """
    res = evaluate_samples(samples, reference, feature_space="inception", inception_weights=inception_weights,
                           inception_sha256=inception_sha256, num_images_expected=adm_npz.num_images(samples),
                           bootstrap=0, batch_size=batch_size, cache_dir=cache_dir, dinov2_weights=dinov2_weights,
                           dinov2_sha256=dinov2_sha256, dinov2_arch=dinov2_arch)
    return res["metrics"]


def compare(a: dict, b: dict) -> dict:
    """For each metric in both results: b - a, an interval for it, and whether the difference exceeds it.

    Method "bootstrap-difference" (both results carry replicates, equal counts): percentile interval of the
    replicate-wise difference b_i - a_i (the two sample sets are independent, so replicates pair freely); the
    difference is significant when 0 lies outside it. Otherwise "ci-overlap": significant only when the two
    intervals do not overlap (conservative). Without intervals, exceeds_interval is None.
    """
    out = {}
    for key in sorted(set(a["metrics"]) & set(b["metrics"])):
        va, vb = a["metrics"][key], b["metrics"][key]
        ra, rb = a.get("bootstrap", {}).get(key), b.get("bootstrap", {}).get(key)
        entry = {"a": va, "b": vb, "difference": vb - va, "lower_is_better": key in LOWER_IS_BETTER}
        if ra and rb and len(ra) == len(rb):
            lo, hi = bs.difference_interval(np.asarray(ra), np.asarray(rb))
            entry.update(method="bootstrap-difference", interval=[lo, hi], exceeds_interval=bool(lo > 0 or hi < 0))
        elif key in a.get("ci", {}) and key in b.get("ci", {}):
            (alo, ahi), (blo, bhi) = a["ci"][key], b["ci"][key]
            entry.update(method="ci-overlap", interval=None, exceeds_interval=bool(blo > ahi or bhi < alo))
        else:
            entry.update(method="none", interval=None, exceeds_interval=None)
        out[key] = entry
    return out


# The metrics whose interval bounds a DVC metrics file carries (`<key>_lo`, `<key>_hi`): the headline distance of
# each feature space and the class accuracy. Every other interval stays in the evaluation detail file, so that
# `dvc exp show` keeps few columns per model (docs/outputs.md, "Metrics").
BOUNDED = (FID, FD_EMBED, CLASS_ACCURACY)
BOUND_SUFFIXES = ("_lo", "_hi")


def flat_metrics(result: dict, bounds: tuple[str, ...] | None = BOUNDED) -> dict[str, float]:
    """The DVC metrics form of an evaluation result ({"metrics", "ci", ...}): {key: value} for every metric, and
    `<key>_lo`/`<key>_hi` for each key of `bounds` (None: every key) that has an interval. Numbers only, flat;
    a metric that was skipped is absent, never null."""
    out, ci = {}, result.get("ci") or {}
    for key, value in result["metrics"].items():
        out[key] = float(value)
        if key in ci and (bounds is None or key in bounds):  # beside its value, in `dvc exp show` too
            out[f"{key}_lo"], out[f"{key}_hi"] = (float(x) for x in ci[key])
    return out


def unflat_metrics(flat: dict) -> dict:
    """flat_metrics backwards, for compare(): {"metrics": {key: value}, "ci": {key: [lo, hi]}} from a flat file
    (a key with both `<key>_lo` and `<key>_hi` gets them as its interval; counts such as num_images are metrics
    too). Non-numeric values are ignored."""
    nums = {k: v for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    ci = {k: [nums[k + "_lo"], nums[k + "_hi"]] for k in nums if k + "_lo" in nums and k + "_hi" in nums}
    bound_keys = {k + s for k in ci for s in BOUND_SUFFIXES}
    return {"metrics": {k: v for k, v in nums.items() if k not in bound_keys}, "ci": ci}


def aggregate_seeds(results: list[dict]) -> dict:
    """mean +- std (ddof=1) of each metric over runs with different sampling seeds."""
    keys = set.intersection(*(set(r["metrics"]) for r in results)) if results else set()
    agg = {}
    for key in sorted(keys):
        v = np.array([r["metrics"][key] for r in results], np.float64)
        agg[key] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}
    return agg
