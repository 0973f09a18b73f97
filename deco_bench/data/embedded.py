"""The embedded default dataset: class-labelled crops of the photographs bundled with scikit-image.

It needs no network and no download, so the whole pipeline (train -> sample -> metrics -> report) runs anywhere.
Each bundled photograph is one class; a sample is a random square crop of it (side between 35% and 90% of the
photograph's short side, random position, random horizontal flip), resized with PIL's antialiased bicubic filter.

Randomness is keyed by index (docs/architecture.md): crop *i* of class *c* in split *s* depends only on
``(seed, s, c, i)``, so the arrays are byte-identical across runs and asking for more crops per class only appends.
The train and reference splits use different keys, so they hold different crops of the same photographs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image

from deco_bench.data.imagenet import uint8_image_to_tensors

# Colour photographs shipped inside the scikit-image wheel (no pooch download). Class index = position here.
COLOUR_PHOTOS: tuple[str, ...] = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "motorcycle_left",
)
# Greyscale photographs, also bundled; replicated to RGB. Used only when more classes than colour photos are asked.
GREY_PHOTOS: tuple[str, ...] = ("camera", "coins", "moon", "grass", "gravel", "brick")
EMBEDDED_PHOTOS: tuple[str, ...] = COLOUR_PHOTOS + GREY_PHOTOS
MAX_EMBEDDED_CLASSES = len(EMBEDDED_PHOTOS)

CROP_FRACTION_RANGE = (0.35, 0.90)  # crop side as a fraction of the photograph's short side
REDUCING_GAP = 3.0  # PIL resize: box pre-reduction, then bicubic (see _random_crop)
TRAIN_SPLIT, REF_SPLIT, HELDOUT_SPLIT = 0, 1, 2  # part of the random key: splits never share a generator


@dataclass
class EmbeddedDataset:
    train_images: np.ndarray  # (N, H, W, 3) uint8, class-major: all crops of class 0, then class 1, ...
    train_labels: np.ndarray  # (N,) int64
    ref_images: np.ndarray  # (M, H, W, 3) uint8, same layout
    ref_labels: np.ndarray  # (M,) int64
    class_names: list[str]


def _skimage_loaders() -> dict[str, Callable[[], np.ndarray]]:
    import skimage.data as skd

    loaders: dict[str, Callable[[], np.ndarray]] = {
        name: getattr(skd, name) for name in EMBEDDED_PHOTOS if name != "motorcycle_left"
    }
    loaders["motorcycle_left"] = lambda: skd.stereo_motorcycle()[0]  # the left view of the stereo pair
    return loaders


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """One bundled photograph as a read-only (H, W, 3) uint8 array (greyscale replicated to RGB)."""
    if name not in EMBEDDED_PHOTOS:
        raise ValueError(f"unknown embedded photograph {name!r}; known: {', '.join(EMBEDDED_PHOTOS)}")
    photo = np.asarray(_skimage_loaders()[name]())
    if photo.ndim == 2:
        photo = np.repeat(photo[:, :, None], 3, axis=2)
    photo = np.ascontiguousarray(photo[:, :, :3], dtype=np.uint8)
    photo.setflags(write=False)
    return photo


def _random_crop(photo: Image.Image, rng: np.random.Generator, resolution: int,
                 crop_fraction: tuple[float, float] = CROP_FRACTION_RANGE) -> np.ndarray:
    width, height = photo.size
    short_side = min(width, height)
    lo, hi = crop_fraction
    side = int(rng.integers(round(lo * short_side), round(hi * short_side) + 1))
    left = int(rng.integers(0, width - side + 1))
    top = int(rng.integers(0, height - side + 1))
    flip = bool(rng.integers(0, 2))
    # resize(box=...) crops and resamples in one pass. PIL widens the bicubic kernel when it downsamples
    # (antialiased); reducing_gap first box-averages by an integer factor while that leaves >= 3x the target size,
    # which is 3-7x faster on the big photographs (retina is 1411 px) at no visible cost.
    crop = photo.resize(
        (resolution, resolution), Image.BICUBIC, box=(left, top, left + side, top + side), reducing_gap=REDUCING_GAP
    )
    pixels = np.asarray(crop)
    return pixels[:, ::-1] if flip else pixels


def _build_split(
    photos: list[Image.Image], split: int, per_class: int, resolution: int, seed: int,
    crop_fraction: tuple[float, float] = CROP_FRACTION_RANGE,
) -> tuple[np.ndarray, np.ndarray]:
    images = np.empty((len(photos) * per_class, resolution, resolution, 3), dtype=np.uint8)
    for label, photo in enumerate(photos):
        for i in range(per_class):
            rng = np.random.default_rng([seed, split, label, i])
            images[label * per_class + i] = _random_crop(photo, rng, resolution, crop_fraction)
    labels = np.repeat(np.arange(len(photos), dtype=np.int64), per_class)
    return images, labels


def build_embedded_dataset(
    *, resolution: int = 32, num_classes: int = 8, train_per_class: int = 128, ref_per_class: int = 64, seed: int = 0,
    crop_fraction: tuple[float, float] = CROP_FRACTION_RANGE,
) -> EmbeddedDataset:
    """Deterministic train and reference crops of the first `num_classes` photographs in `EMBEDDED_PHOTOS`."""
    if not 1 <= num_classes <= MAX_EMBEDDED_CLASSES:
        raise ValueError(
            f"data.num_classes = {num_classes}: the embedded dataset has between 1 and {MAX_EMBEDDED_CLASSES} classes "
            f"(one per bundled photograph)"
        )
    for key, value in (("data.resolution", resolution), ("train_per_class", train_per_class),
                       ("ref_per_class", ref_per_class)):
        if int(value) != value or value < 1:
            raise ValueError(f"{key} = {value}: must be a positive integer")
    if seed < 0:
        raise ValueError(f"seed = {seed}: must be >= 0")
    lo, hi = crop_fraction
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"data.crop_scale = {list(crop_fraction)}: must be [lo, hi] with 0 < lo <= hi <= 1")
    names = list(EMBEDDED_PHOTOS[:num_classes])
    photos = [Image.fromarray(load_photo(name)) for name in names]
    train_images, train_labels = _build_split(photos, TRAIN_SPLIT, train_per_class, resolution, seed, crop_fraction)
    ref_images, ref_labels = _build_split(photos, REF_SPLIT, ref_per_class, resolution, seed, crop_fraction)
    return EmbeddedDataset(train_images, train_labels, ref_images, ref_labels, names)


def build_heldout_split(*, resolution: int, num_classes: int, num_images: int, seed: int = 0,
                        crop_fraction: tuple[float, float] = CROP_FRACTION_RANGE) -> tuple[np.ndarray, np.ndarray]:
    """`num_images` real crops that neither the models nor the evaluation network train on, nor the reference
    holds: image i has class i mod num_classes, like a sample set, so the two are scored alike (the floor of FD
    and the ceiling of class accuracy)."""
    photos = [Image.fromarray(load_photo(name)) for name in EMBEDDED_PHOTOS[:num_classes]]
    per_class = -(-num_images // num_classes)
    images, labels = _build_split(photos, HELDOUT_SPLIT, per_class, resolution, seed, crop_fraction)
    order = np.argsort(np.arange(len(labels)) % per_class * num_classes + labels, kind="stable")[:num_images]
    return images[order], labels[order]


class ArrayDataset(torch.utils.data.Dataset):
    """In-memory uint8 NHWC images as the training triple ``(x in [-1, 1], label, raw in [0, 1])``.

    Same conversion as `ImageFolderDataset`, so the embedded data and ImageNet feed the model identically.
    """

    def __init__(self, images_uint8_nhwc: np.ndarray, labels: np.ndarray):
        images = np.asarray(images_uint8_nhwc)
        labels = np.asarray(labels)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3); got {images.dtype} {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"labels must be (N,) = ({len(images)},); got {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers; got {labels.dtype}")
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        x, raw = uint8_image_to_tensors(self.images[idx])
        return x, int(self.labels[idx]), raw
