"""ADM .npz in and out: streamed reading, reference statistics round trip, and every malformed input."""

from __future__ import annotations

import numpy as np
import pytest

from deco_bench.io import CorruptFileError, MissingFileError
from deco_bench.metrics import adm_npz
from deco_bench.metrics.adm_npz import SampleFormatError
from deco_bench.metrics.frechet import FeatureStats


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, (23, 8, 8, 3), dtype=np.uint8)


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("batch_size", [1, 5, 23, 64])
def test_streamed_batches_reassemble_the_array(tmp_path, images, compressed, batch_size):
    (np.savez_compressed if compressed else np.savez)(tmp_path / "s.npz", arr_0=images)
    batches = list(adm_npz.iter_image_batches(tmp_path / "s.npz", batch_size))
    assert [len(b) for b in batches][:-1] == [batch_size] * (len(batches) - 1)
    np.testing.assert_array_equal(np.concatenate(batches), images)
    assert adm_npz.num_images(tmp_path / "s.npz") == 23
    np.testing.assert_array_equal(adm_npz.read_images(tmp_path / "s.npz", limit=7), images[:7])


def test_reference_round_trip(tmp_path, images):
    rng = np.random.default_rng(1)
    pool = FeatureStats.from_features(rng.normal(size=(30, 6)))
    spatial = FeatureStats.from_features(rng.normal(size=(30, 4)))
    adm_npz.write_reference(tmp_path / "ref.npz", pool, spatial, images=images)
    with np.load(tmp_path / "ref.npz") as z:  # the official evaluator's view of it
        assert set(z.files) == {"mu", "sigma", "mu_s", "sigma_s", "arr_0"}
        np.testing.assert_array_equal(z["sigma_s"], spatial.sigma)
        np.testing.assert_array_equal(z["arr_0"], images)
    back = adm_npz.read_reference_stats(tmp_path / "ref.npz")
    np.testing.assert_array_equal(back.pool.mu, pool.mu)
    np.testing.assert_array_equal(back.spatial.sigma, spatial.sigma)


def test_reference_with_images_only_has_no_stats(tmp_path, images):
    np.savez(tmp_path / "r.npz", arr_0=images)
    back = adm_npz.read_reference_stats(tmp_path / "r.npz")
    assert back.pool is None and back.spatial is None


def test_reference_with_half_a_pair_is_refused(tmp_path):
    np.savez(tmp_path / "r.npz", mu=np.zeros(3))
    with pytest.raises(CorruptFileError, match="sigma"):
        adm_npz.read_reference_stats(tmp_path / "r.npz")


@pytest.mark.parametrize("array, match", [
    (np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 3)).astype(np.float32), r"uint8.*\[-1"),
    (np.full((4, 8, 8, 3), np.nan, np.float32), "NaN"),
    (np.zeros((4, 3, 8, 8), np.uint8), "NCHW"),
    (np.zeros((4, 8, 8, 1), np.uint8), "3 channels"),
    (np.zeros((8, 8, 3), np.uint8), r"\(N, H, W, 3\)"),
])
def test_malformed_samples_are_named(tmp_path, array, match):
    np.savez(tmp_path / "bad.npz", arr_0=array)
    with pytest.raises(SampleFormatError, match=match):
        next(adm_npz.iter_image_batches(tmp_path / "bad.npz", 2))


def test_truncated_missing_and_keyless_files(tmp_path, images):
    np.savez(tmp_path / "s.npz", arr_0=images)
    data = (tmp_path / "s.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError):
        list(adm_npz.iter_image_batches(tmp_path / "cut.npz", 4))
    with pytest.raises(MissingFileError):
        adm_npz.num_images(tmp_path / "absent.npz")
    np.savez(tmp_path / "other.npz", images=images)
    with pytest.raises(CorruptFileError, match="arr_0"):
        adm_npz.num_images(tmp_path / "other.npz")
