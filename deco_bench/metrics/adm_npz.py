"""ADM-format .npz I/O: sample batches (`arr_0`, uint8 NHWC) read in a stream, reference statistics in and out.

A sample batch is `np.savez(path, arr_0=uint8 (N, H, W, 3))` (ADM / guided-diffusion convention). A reference batch
(e.g. VIRTUAL_imagenet256_labeled.npz) may hold `mu`, `sigma` (pool_3, for FID), `mu_s`, `sigma_s` (spatial, for
sFID) and/or `arr_0` (images, for precision/recall). `arr_0` is read member by member from the zip, a batch at a
time, so 50,000 x 256 x 256 x 3 never has to fit in memory (compressed .npz files stream too).
"""

from __future__ import annotations

import os
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np

from deco_bench.io import CorruptFileError, DecoBenchError, MissingFileError, atomic_path, atomic_savez, load_npz
from deco_bench.metrics.frechet import FeatureStats

IMAGES_KEY = "arr_0"
STATS_KEYS = ("mu", "sigma", "mu_s", "sigma_s")


class SampleFormatError(DecoBenchError):
    """Images are not uint8 NHWC RGB (wrong dtype, range, layout or channel count), or hold NaN/Inf."""


class TooFewImagesError(DecoBenchError):
    """A metric was asked for on more images than the file holds."""


def check_images(batch: np.ndarray, where: str = "images") -> None:
    """Refuse anything but uint8 (N, H, W, 3); name what is wrong and how to fix it."""
    if batch.ndim != 4:
        raise SampleFormatError(f"{where}: expected a (N, H, W, 3) array, got shape {batch.shape}")
    if batch.dtype != np.uint8:
        hint = ""
        if np.issubdtype(batch.dtype, np.floating):
            if not np.isfinite(batch).all():
                hint = " It contains NaN/Inf: the sampler diverged."
            else:
                lo, hi = float(batch.min()), float(batch.max())
                hint = (f" Its values lie in [{lo:.3g}, {hi:.3g}]; convert with "
                        "((x + 1) * 127.5).round().clip(0, 255).astype(np.uint8) for [-1, 1] images.")
        raise SampleFormatError(f"{where}: expected dtype uint8 (ADM format), got {batch.dtype}.{hint}")
    if batch.shape[-1] != 3:
        layout = " (looks like NCHW; transpose to NHWC)" if batch.shape[1] == 3 else ""
        raise SampleFormatError(f"{where}: expected 3 channels last (NHWC), got shape {batch.shape}{layout}")


@contextmanager
def _open_member(path: Path, key: str) -> Iterator[tuple[IO[bytes], tuple[int, ...], np.dtype]]:
    if not path.exists():
        raise MissingFileError(f"{path}: file not found")
    try:
        with zipfile.ZipFile(path) as zf:
            if f"{key}.npy" not in zf.namelist():
                raise CorruptFileError(f"{path}: no array '{key}' (it holds {sorted(n[:-4] for n in zf.namelist())})")
            with zf.open(f"{key}.npy") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise CorruptFileError(f"{path}: '{key}' uses .npy format {version}; expected 1.0 or 2.0")
                if fortran or dtype.hasobject:
                    raise CorruptFileError(f"{path}: '{key}' is Fortran-ordered or holds objects; not ADM format")
                yield f, shape, dtype
    except (zipfile.BadZipFile, EOFError, ValueError) as e:
        raise CorruptFileError(f"{path}: not a readable .npz file (truncated or corrupt?): {e}") from e


def array_info(path: str | os.PathLike, key: str = IMAGES_KEY) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one array, read from its header only."""
    with _open_member(Path(path), key) as (_, shape, dtype):
        return shape, dtype


def has_array(path: str | os.PathLike, key: str) -> bool:
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: file not found")
    try:
        with zipfile.ZipFile(path) as zf:
            return f"{key}.npy" in zf.namelist()
    except zipfile.BadZipFile as e:
        raise CorruptFileError(f"{path}: not a readable .npz file: {e}") from e


def num_images(path: str | os.PathLike) -> int:
    return int(array_info(path)[0][0])


def iter_image_batches(path: str | os.PathLike, batch_size: int, limit: int | None = None) -> Iterator[np.ndarray]:
    """Yield validated uint8 (b, H, W, 3) batches of `arr_0` in file order, reading only b images at a time."""
    path = Path(path)
    with _open_member(path, IMAGES_KEY) as (f, shape, dtype):
        per_image = int(np.prod(shape[1:])) * dtype.itemsize
        if dtype != np.uint8 and len(shape) == 4 and shape[0] > 0:  # show some values: range / NaN in the error
            head = np.frombuffer(f.read(min(shape[0], 64) * per_image), dtype=dtype)
            check_images(head.reshape(-1, *shape[1:]), f"{path}:{IMAGES_KEY}")
        check_images(np.empty((0, *shape[1:]), dtype=dtype), f"{path}:{IMAGES_KEY}")
        total = shape[0] if limit is None else min(limit, shape[0])
        for start in range(0, total, batch_size):
            b = min(batch_size, total - start)
            data = f.read(b * per_image)
            if len(data) != b * per_image:
                raise CorruptFileError(f"{path}: {IMAGES_KEY} ends after {start} images; header says {shape[0]}")
            yield np.frombuffer(data, dtype=dtype).reshape(b, *shape[1:])


def read_images(path: str | os.PathLike, limit: int | None = None) -> np.ndarray:
    """All of `arr_0` (or its first `limit` images) in memory; for small sets (reference batches, tests)."""
    batches = list(iter_image_batches(path, 1024, limit))
    return np.concatenate(batches) if batches else np.empty((0,), np.uint8)


@dataclass(frozen=True)
class ReferenceStats:
    pool: FeatureStats | None  # mu, sigma
    spatial: FeatureStats | None  # mu_s, sigma_s


def read_reference_stats(path: str | os.PathLike) -> ReferenceStats:
    """mu/sigma and mu_s/sigma_s when the file holds them (used as is), else None for each missing pair."""
    path = Path(path)
    names = {k for k in (*STATS_KEYS, IMAGES_KEY) if has_array(path, k)}
    pairs = {}
    for tag, (km, ks) in {"pool": ("mu", "sigma"), "spatial": ("mu_s", "sigma_s")}.items():
        if km in names and ks in names:
            arrays = load_npz(path, [km, ks])
            pairs[tag] = FeatureStats(mu=arrays[km].astype(np.float64), sigma=arrays[ks].astype(np.float64), n=0)
        elif km in names or ks in names:
            raise CorruptFileError(f"{path}: holds only one of '{km}'/'{ks}'")
        else:
            pairs[tag] = None
    return ReferenceStats(**pairs)


def write_reference(path: str | os.PathLike, pool: FeatureStats, spatial: FeatureStats,
                    images: np.ndarray | None = None) -> None:
    """Write a reference batch in ADM's format (the official evaluator reads it as is)."""
    arrays = {"mu": pool.mu, "sigma": pool.sigma, "mu_s": spatial.mu, "sigma_s": spatial.sigma}
    if images is not None:
        check_images(images, "reference images")
        arrays[IMAGES_KEY] = images
    atomic_savez(path, **arrays)


def write_images_streaming(path: str | os.PathLike, parts: Iterable[np.ndarray], shape: tuple[int, ...],
                           **extra: np.ndarray) -> None:
    """Write an ADM sample batch whose `arr_0` (uint8, `shape`) arrives in parts: one part in memory at a time.

    The file is an ordinary uncompressed .npz (np.load, ADM's evaluator and `iter_image_batches` read it); `extra`
    arrays (labels, train_step) follow arr_0. Written through a temporary file, so a kill or a full disk never
    leaves a partial batch under `path`.
    """
    shape = tuple(int(d) for d in shape)
    written = 0
    with atomic_path(path, suffix=".npz") as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open(f"{IMAGES_KEY}.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_2_0(f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                                                     "fortran_order": False, "shape": shape})
            for part in parts:
                check_images(part, f"{path}: part at image {written}")
                if tuple(part.shape[1:]) != shape[1:]:
                    raise SampleFormatError(f"{path}: part at image {written} has shape {part.shape}, expected "
                                            f"(*, {', '.join(map(str, shape[1:]))})")
                f.write(np.ascontiguousarray(part).tobytes())
                written += part.shape[0]
        if written != shape[0]:
            raise CorruptFileError(f"{path}: {written} images were written, {shape[0]} announced")
        for key, value in extra.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)
