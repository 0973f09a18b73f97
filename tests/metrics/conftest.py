"""Shared, session-scoped inputs: a random Inception weights file, tiny ADM sample/reference batches, and ONE
feature extraction of each (Inception on CPU costs ~0.4 s per image in float64, so nothing is extracted twice)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deco_bench.io import sha256_file

from ._inception_fixture import make_random_inception_state

N_SAMPLES, N_REF = 12, 12  # ~0.4 s per image on one CPU core (float64 Inception)


def blobs(n: int, seed: int, brightness: float) -> np.ndarray:
    """uint8 (n, 32, 32, 3) smooth random images (8x8 colour fields upsampled, plus noise)."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 255 * brightness, (n, 8, 8, 3))
    img = low.repeat(4, axis=1).repeat(4, axis=2) + rng.normal(0, 12, (n, 32, 32, 3))
    return img.clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(make_random_inception_state(seed=0), path)
    return str(path)


@pytest.fixture(scope="session")
def inception_sha(inception_weights) -> str:
    return sha256_file(inception_weights)


@pytest.fixture(scope="session")
def adm_batches(tmp_path_factory):
    d = tmp_path_factory.mktemp("adm")
    samples, ref = blobs(N_SAMPLES, 1, 1.0), blobs(N_REF, 2, 0.7)
    np.savez(d / "samples.npz", arr_0=samples)
    np.savez(d / "ref.npz", arr_0=ref)
    return {"samples_path": str(d / "samples.npz"), "ref_path": str(d / "ref.npz"), "samples": samples, "ref": ref}


@pytest.fixture(scope="session")
def extractor(inception_weights, inception_sha):
    from deco_bench.metrics.inception import InceptionFeatures

    return InceptionFeatures(inception_weights, weights_sha256=inception_sha)


@pytest.fixture(scope="session")
def inception_feats(adm_batches, extractor, tmp_path_factory):
    """Our extraction of both batches, through the content-addressed cache (later calls hit the cache)."""
    from deco_bench.metrics.features import extract_npz

    cache = tmp_path_factory.mktemp("feature-cache")
    s = extract_npz(adm_batches["samples_path"], extractor, num_images=N_SAMPLES, batch_size=8, cache_dir=cache)
    r = extract_npz(adm_batches["ref_path"], extractor, num_images=N_REF, batch_size=8, cache_dir=cache)
    return {"samples": s, "ref": r, "cache_dir": str(cache)}
