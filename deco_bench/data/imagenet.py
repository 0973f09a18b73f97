"""ImageNet-style image folders (``root/<class_dir>/<images>``) with ADM's centre crop.

The official DeCo data pipeline (`src/data/dataset/imagenet.py`, `PixImageNet`) is torchvision's `ImageFolder`
followed by ADM's `center_crop_fn`, `to_tensor` and `Normalize(0.5, 0.5)` (docs/paper.md: "pixels in [-1, 1] after ADM
center_crop_fn, no flip or random crop by default"). We keep its class order (sorted folder names) and sample order
(sorted walk), and add what a long run needs: `check_image_folder` fails before any GPU time is spent, and damaged
or undersized files are skipped and counted, or refused by name, instead of crashing a worker mid-epoch.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from deco_bench.io import DecoBenchError

IMAGENET_ROOT_ENV = "DECO_IMAGENET"
IMAGENET_ROOT_KEY = "data.imagenet_root"
# The extensions torchvision's ImageFolder accepts (parity with the official loader: same files, same labels).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
BAD_IMAGE_POLICIES = ("skip", "fail")
MIN_SIZE_POLICIES = ("skip", "fail", "upscale")


class DataError(DecoBenchError):
    """A dataset folder or image cannot be used as asked (message names the folder, file or params key)."""


def resolve_imagenet_root(param_value: str | os.PathLike | None) -> Path:
    """`data.imagenet_root` if set, else the environment variable DECO_IMAGENET."""
    value = str(param_value) if param_value not in (None, "") else os.environ.get(IMAGENET_ROOT_ENV, "")
    if not value.strip():
        raise DataError(
            f"no ImageNet folder given: set `{IMAGENET_ROOT_KEY}` in params.yaml or the environment variable "
            f"{IMAGENET_ROOT_ENV} to a folder laid out as <root>/<class_dir>/<images>"
        )
    return Path(value).expanduser()


def adm_center_crop(pil_image: Image.Image, size: int) -> Image.Image:
    """ADM's centre crop (guided-diffusion `image_datasets.py`, used by the official DeCo loader).

    Halve with a box filter while the short side is at least 2*size (cheap antialiasing), then one bicubic resize
    so the short side equals `size`, then take the centred size x size square. Images smaller than `size` are
    upscaled by the bicubic step, as in ADM.
    """
    if size < 1:
        raise ValueError(f"crop size = {size}: must be >= 1")
    image = pil_image
    while min(image.size) >= 2 * size:
        image = image.resize((image.width // 2, image.height // 2), resample=Image.BOX)
    # Parity with the official code: the factor is computed once and Python's round() (ties to even) is applied
    # to width * factor, not to width * size / short_side, which can round differently.
    factor = size / min(image.size)
    image = image.resize((round(image.width * factor), round(image.height * factor)), resample=Image.BICUBIC)
    left = (image.width - size) // 2
    top = (image.height - size) // 2
    return image.crop((left, top, left + size, top + size))


def uint8_image_to_tensors(pixels_hwc: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W, 3) uint8 -> (x in [-1, 1], raw in [0, 1]), both float32 (3, H, W).

    Bit-identical to torchvision's `to_tensor` then `Normalize(mean=0.5, std=0.5)` (parity with `PixImageNet`).
    """
    pixels = np.array(pixels_hwc, dtype=np.uint8, order="C")  # a copy: PIL-backed arrays are read-only
    raw = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255)
    x = (raw - 0.5) / 0.5
    return x, raw


@dataclass(frozen=True)
class FolderSummary:
    root: Path
    resolution: int
    class_names: list[str]  # sorted; label = position
    images_per_class: list[int]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_images(self) -> int:
        return sum(self.images_per_class)


def _is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _scan_class_folder(class_dir: Path) -> list[Path]:
    # Recursive, sorted walk (parity with torchvision's make_dataset, so sample order and count match).
    files = []
    for folder, _, names in sorted(os.walk(class_dir, followlinks=True)):
        files.extend(Path(folder) / name for name in sorted(names) if _is_image_file(name))
    return files


def _scan_image_folder(
    root: str | os.PathLike | None, resolution: int, expect_num_classes: int | None
) -> tuple[FolderSummary, list[tuple[Path, int]]]:
    if root in (None, ""):
        raise DataError(f"no image folder given (set `{IMAGENET_ROOT_KEY}` or {IMAGENET_ROOT_ENV})")
    if int(resolution) != resolution or resolution < 1:
        raise DataError(f"data.resolution = {resolution}: must be a positive integer")
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise DataError(f"image folder {root} is not a directory")
    class_names = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    if not class_names:
        raise DataError(f"image folder {root} has no class sub-folders (expected <root>/<class_dir>/<images>)")
    if expect_num_classes is not None and len(class_names) != expect_num_classes:
        raise DataError(
            f"image folder {root} has {len(class_names)} class folders but data.num_classes = {expect_num_classes}"
        )
    samples: list[tuple[Path, int]] = []
    counts = []
    for label, name in enumerate(class_names):
        files = _scan_class_folder(root / name)
        if not files:
            raise DataError(
                f"class folder {root / name} has no images (looked for {', '.join(IMAGE_EXTENSIONS)})"
            )
        samples.extend((path, label) for path in files)
        counts.append(len(files))
    return FolderSummary(root, int(resolution), class_names, counts), samples


def check_image_folder(
    root: str | os.PathLike | None, *, resolution: int, expect_num_classes: int | None = None
) -> FolderSummary:
    """Validate the folder layout (not the image contents) and count images; raises DataError on any problem.

    Cheap (one directory walk, no image decoding), so stages call it before any GPU work. Use
    `ImageFolderDataset.verify_all` to decode every file as well.
    """
    summary, _ = _scan_image_folder(root, resolution, expect_num_classes)
    return summary


def _unusable_reason(path: Path, *, resolution: int, min_size_policy: str) -> str | None:
    """Why `path` cannot be used (as ImageFolderDataset._load decides), or None; run in worker processes."""
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")  # a full decode: truncation shows up here
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return f"unreadable image: {type(exc).__name__}: {exc}"
    if min(image.size) < resolution and min_size_policy != "upscale":
        return f"image {image.width}x{image.height} is smaller than the resolution {resolution}"
    return None


class ImageFolderDataset(torch.utils.data.Dataset):
    """``root/<class_dir>/<images>`` as ``(x in [-1, 1], label, raw in [0, 1])``, each (3, R, R) float32.

    on_bad_image: a file that cannot be decoded is 'skip'ped (recorded in `skipped`, replaced by the next valid
        file of the same class, in folder order, so the class balance and the result are deterministic) or
        'fail's with a DataError naming the file.
    min_size_policy: an image whose short side is below `resolution` is 'upscale'd (what ADM and the official
        code do), 'skip'ped like a bad file, or 'fail's.

    `skipped` fills as files are met; with DataLoader workers each worker holds its own copy.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        resolution: int,
        *,
        on_bad_image: Literal["skip", "fail"] = "skip",
        min_size_policy: Literal["skip", "fail", "upscale"] = "upscale",
        expect_num_classes: int | None = None,
    ):
        if on_bad_image not in BAD_IMAGE_POLICIES:
            raise ValueError(f"on_bad_image = {on_bad_image!r}: must be one of {BAD_IMAGE_POLICIES}")
        if min_size_policy not in MIN_SIZE_POLICIES:
            raise ValueError(f"min_size_policy = {min_size_policy!r}: must be one of {MIN_SIZE_POLICIES}")
        self.summary, self.samples = _scan_image_folder(root, resolution, expect_num_classes)
        self.resolution = int(resolution)
        self.on_bad_image = on_bad_image
        self.min_size_policy = min_size_policy
        self.class_names = self.summary.class_names
        self.skipped: dict[Path, str] = {}
        # Index range [start, end) of each class in `samples`, for the same-class replacement of skipped files.
        starts = np.cumsum([0] + self.summary.images_per_class)
        self._class_range = [(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]

    def __len__(self) -> int:
        return len(self.samples)

    def _apply_policy(self, path: Path, reason: str) -> None:
        """A reason found by _unusable_reason, under the policies: raise for 'fail', else return (skip)."""
        if reason.startswith("unreadable") and self.on_bad_image == "fail":
            raise DataError(f"{path}: {reason} (data.on_bad_image = 'fail')")
        if not reason.startswith("unreadable") and self.min_size_policy == "fail":
            raise DataError(f"{path}: {reason} (data.min_size_policy = 'fail')")

    def _load(self, idx: int) -> np.ndarray | str:
        """The cropped (R, R, 3) uint8 pixels of sample `idx`, or the reason it cannot be used."""
        path, _ = self.samples[idx]
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")  # forces a full decode: truncation shows up here
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            reason = f"unreadable image: {type(exc).__name__}: {exc}"
            if self.on_bad_image == "fail":
                raise DataError(f"{path}: {reason} (data.on_bad_image = 'fail')") from exc
            return reason
        if min(image.size) < self.resolution and self.min_size_policy != "upscale":
            reason = f"image {image.width}x{image.height} is smaller than the resolution {self.resolution}"
            if self.min_size_policy == "fail":
                raise DataError(f"{path}: {reason} (data.min_size_policy = 'fail')")
            return reason
        return np.asarray(adm_center_crop(image, self.resolution))

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} images")
        idx %= len(self)
        label = self.samples[idx][1]
        start, end = self._class_range[label]
        for offset in range(end - start):  # idx, then the following files of the same class, wrapping around
            candidate = start + (idx - start + offset) % (end - start)
            path = self.samples[candidate][0]
            if path in self.skipped:
                continue
            pixels = self._load(candidate)
            if isinstance(pixels, str):
                self.skipped[path] = pixels
                continue
            x, raw = uint8_image_to_tensors(pixels)
            return x, label, raw
        raise DataError(f"class folder {self.summary.root / self.class_names[label]} has no usable image")

    def verify_all(self, workers: int = 0) -> dict[Path, str]:
        """Decode every file now (policies apply as in __getitem__); returns `skipped` (the files a run skips).

        `workers` > 1 decodes in that many processes (the prepare stage: every ImageNet file before any GPU time).
        Raises DataError for the first bad file under 'fail', or when a whole class has no usable image.
        """
        todo = [idx for idx, (path, _) in enumerate(self.samples) if path not in self.skipped]
        if workers > 1:
            job = functools.partial(_unusable_reason, resolution=self.resolution, min_size_policy=self.min_size_policy)
            with concurrent.futures.ProcessPoolExecutor(workers) as pool:
                reasons = pool.map(job, [self.samples[i][0] for i in todo], chunksize=256)
                for idx, reason in zip(todo, reasons):
                    if reason is not None:
                        self._apply_policy(self.samples[idx][0], reason)
                        self.skipped[self.samples[idx][0]] = reason
        else:
            for idx in todo:
                reason = self._load(idx)
                if isinstance(reason, str):
                    self.skipped[self.samples[idx][0]] = reason
        bad = set(self.skipped)
        for label, (start, end) in enumerate(self._class_range):
            if all(self.samples[i][0] in bad for i in range(start, end)):
                raise DataError(f"class folder {self.summary.root / self.class_names[label]} has no usable image")
        return dict(self.skipped)
