"""One pass of feature extraction over an ADM .npz, cached by content (sha256 of the file) + extractor identity.

An extractor is any callable uint8 (b, H, W, 3) -> {name: (b, d) array} with an `identity` dict (weights sha256,
layers, dtype). The cache key never uses a file name, so renaming or overwriting a samples file cannot serve stale
features; the batch size is not part of the key because features do not depend on it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from deco_bench.io import CorruptFileError, atomic_savez, load_npz, sha256_file
from deco_bench.metrics.adm_npz import iter_image_batches


class Extractor(Protocol):
    identity: dict

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]: ...


def extract(batches, extractor: Callable[[np.ndarray], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Run `extractor` over an iterable of uint8 batches; concatenate each output; refuse NaN/Inf features."""
    parts: dict[str, list[np.ndarray]] = {}
    for batch in batches:
        for name, value in extractor(batch).items():
            parts.setdefault(name, []).append(value)
    out = {name: np.concatenate(v) for name, v in parts.items()}
    for name, value in out.items():
        if not np.isfinite(value).all():
            raise CorruptFileError(f"feature '{name}' has NaN/Inf: the extractor weights are probably corrupt")
    return out


def cache_key(file_sha256: str, identity: dict, num_images: int) -> str:
    ident = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"{file_sha256[:20]}-{ident[:20]}-n{num_images}"


def extract_npz(path: str | os.PathLike, extractor: Extractor, *, num_images: int, batch_size: int = 50,
                cache_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Features of the first `num_images` images of `path` (`arr_0`), from the cache when present."""
    if cache_dir is None:
        return extract(iter_image_batches(path, batch_size, num_images), extractor)
    target = Path(cache_dir) / f"{cache_key(sha256_file(path), extractor.identity, num_images)}.npz"
    if target.exists():
        try:
            return load_npz(target)
        except CorruptFileError:
            target.unlink()  # a damaged cache entry is recomputed, never trusted
    feats = extract(iter_image_batches(path, batch_size, num_images), extractor)
    atomic_savez(target, **feats)
    return feats
