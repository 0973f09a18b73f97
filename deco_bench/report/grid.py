"""The sample grid: a model's sample images as one small PNG (rows = classes), inlined as a data: URI."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from PIL import Image


def sample_grid(images: np.ndarray, labels: np.ndarray, *, per_class: int, max_classes: int,
                max_tile: int = 64) -> tuple[np.ndarray, list[int]]:
    """Rows = classes (the first `max_classes` present, in order), `per_class` images each (first by index).

    Tiles larger than `max_tile` pixels are subsampled by an integer stride so a 256 px run stays small.
    Returns (grid uint8 (rows*h, per_class*w, 3), the row classes). Missing cells stay white.
    """
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"samples must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {labels.shape}")
    stride = max(1, math.ceil(images.shape[1] / max_tile))
    tiles = images[:, ::stride, ::stride]
    h, w = tiles.shape[1:3]
    classes = [int(c) for c in dict.fromkeys(labels.tolist())][:max_classes]
    grid = np.full((len(classes) * h, per_class * w, 3), 255, np.uint8)
    for r, c in enumerate(classes):
        for k, i in enumerate(np.nonzero(labels == c)[0][:per_class]):
            grid[r * h:(r + 1) * h, k * w:(k + 1) * w] = tiles[i]
    return grid, classes


def png_data_uri(rgb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
