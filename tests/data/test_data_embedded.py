"""The embedded dataset: determinism, independence of the splits, class balance, one class per photograph."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from deco_bench.data import EMBEDDED_PHOTOS, MAX_EMBEDDED_CLASSES, ArrayDataset, build_embedded_dataset
from deco_bench.data.embedded import COLOUR_PHOTOS, load_photo

SMALL = dict(resolution=16, num_classes=8, train_per_class=6, ref_per_class=3)


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str((a.dtype, a.shape)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small():
    return build_embedded_dataset(**SMALL, seed=0)


def test_same_arguments_give_byte_identical_arrays(small):
    again = build_embedded_dataset(**SMALL, seed=0)
    assert _digest(small.train_images, small.train_labels, small.ref_images, small.ref_labels) == _digest(
        again.train_images, again.train_labels, again.ref_images, again.ref_labels
    )
    other_seed = build_embedded_dataset(**SMALL, seed=1)
    assert _digest(small.train_images) != _digest(other_seed.train_images)


def test_crops_are_keyed_by_index_so_more_per_class_only_appends(small):
    more = build_embedded_dataset(**{**SMALL, "train_per_class": 9, "ref_per_class": 5}, seed=0)
    per, per_more = SMALL["train_per_class"], 9
    for c in range(SMALL["num_classes"]):
        np.testing.assert_array_equal(more.train_images[c * per_more : c * per_more + per],
                                      small.train_images[c * per : (c + 1) * per])
        np.testing.assert_array_equal(more.ref_images[c * 5 : c * 5 + 3], small.ref_images[c * 3 : (c + 1) * 3])


def test_train_and_reference_crops_differ(small):
    train = {img.tobytes() for img in small.train_images}
    ref = {img.tobytes() for img in small.ref_images}
    assert len(train) == len(small.train_images)  # no duplicate crops inside a split either
    assert len(ref) == len(small.ref_images)
    assert not train & ref
    # Not merely one pixel apart: the first crops of each class differ substantially between splits.
    per_t, per_r = SMALL["train_per_class"], SMALL["ref_per_class"]
    for c in range(SMALL["num_classes"]):
        diff = np.abs(small.train_images[c * per_t].astype(int) - small.ref_images[c * per_r].astype(int))
        assert diff.mean() > 5


def test_labels_are_balanced_int64_and_class_major(small):
    assert small.train_labels.dtype == np.int64 and small.ref_labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(small.train_labels), [SMALL["train_per_class"]] * 8)
    np.testing.assert_array_equal(np.bincount(small.ref_labels), [SMALL["ref_per_class"]] * 8)
    np.testing.assert_array_equal(small.train_labels, np.repeat(np.arange(8), SMALL["train_per_class"]))
    assert small.class_names == list(COLOUR_PHOTOS)  # default 8 classes = colour photographs only


def _colour_histogram(pixels: np.ndarray) -> np.ndarray:
    quantised = pixels.reshape(-1, 3).astype(int) // 64  # 4 levels per channel -> 64 bins
    bins = quantised[:, 0] * 16 + quantised[:, 1] * 4 + quantised[:, 2]
    return np.bincount(bins, minlength=64) / len(bins)


def test_each_class_is_crops_of_its_own_photograph(small):
    # The colour histogram of a class's crops overlaps most with that of its own photograph (and by a margin).
    photo_hists = np.stack([_colour_histogram(load_photo(n)) for n in small.class_names])
    for c in range(len(small.class_names)):
        overlap = np.minimum(photo_hists, _colour_histogram(small.train_images[small.train_labels == c])).sum(1)
        assert np.argmax(overlap) == c
        assert overlap[c] > 0.6


def test_pixels_are_uint8_nhwc_and_use_the_range(small):
    assert small.train_images.dtype == np.uint8
    assert small.train_images.shape == (8 * 6, 16, 16, 3)
    assert small.train_images.min() <= 10 and small.train_images.max() >= 245  # real photos, not blank crops
    assert all(small.train_images[i].std() > 3 for i in range(len(small.train_images)))


def test_greyscale_photographs_extend_the_classes_as_rgb():
    data = build_embedded_dataset(resolution=8, num_classes=MAX_EMBEDDED_CLASSES, train_per_class=1, ref_per_class=1)
    assert data.class_names == list(EMBEDDED_PHOTOS)
    grey = data.train_images[len(COLOUR_PHOTOS):]
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])


@pytest.mark.parametrize("num_classes", [0, MAX_EMBEDDED_CLASSES + 1])
def test_bad_num_classes_names_the_key_and_the_maximum(num_classes):
    with pytest.raises(ValueError, match=rf"data\.num_classes.*{MAX_EMBEDDED_CLASSES}"):
        build_embedded_dataset(num_classes=num_classes, train_per_class=1, ref_per_class=1)


@pytest.mark.parametrize("bad", [dict(resolution=0), dict(train_per_class=0), dict(ref_per_class=-1), dict(seed=-1)])
def test_bad_sizes_are_refused(bad):
    with pytest.raises(ValueError):
        build_embedded_dataset(**{**SMALL, **bad})


def test_default_size_build_has_the_expected_shapes():
    """The default profile's size (its build time is benchmarked in tests/benchmarks/test_hot_paths.py)."""
    data = build_embedded_dataset(resolution=32, num_classes=8, train_per_class=128, ref_per_class=64, seed=0)
    assert data.train_images.shape == (1024, 32, 32, 3) and data.ref_images.shape == (512, 32, 32, 3)
    assert data.train_images.dtype == np.uint8 and np.bincount(data.train_labels, minlength=8).tolist() == [128] * 8


def test_array_dataset_maps_uint8_to_both_ranges_exactly():
    images = np.zeros((2, 4, 5, 3), dtype=np.uint8)
    images[0, 0, 0] = (0, 128, 255)
    images[1] = 255
    ds = ArrayDataset(images, np.array([3, 1]))
    x, label, raw = ds[0]
    assert label == 3 and isinstance(label, int) and len(ds) == 2
    assert x.dtype == torch.float32 and x.shape == (3, 4, 5)
    assert raw[:, 0, 0].tolist() == [0.0, np.float32(128) / np.float32(255), 1.0]  # float32 division, as to_tensor
    assert x[:, 0, 0].tolist() == pytest.approx([-1.0, (128 / 255 - 0.5) / 0.5, 1.0], abs=1e-6)
    assert x[:, 1:].eq(-1).all()
    x1, label1, raw1 = ds[1]
    assert label1 == 1 and x1.eq(1).all() and raw1.eq(1).all()
    torch.testing.assert_close(x, raw * 2 - 1, rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    "images, labels",
    [
        (np.zeros((2, 4, 4, 3), np.float32), np.zeros(2, np.int64)),  # not uint8
        (np.zeros((2, 3, 4, 4), np.uint8), np.zeros(2, np.int64)),  # NCHW
        (np.zeros((2, 4, 4, 3), np.uint8), np.zeros(3, np.int64)),  # length mismatch
        (np.zeros((2, 4, 4, 3), np.uint8), np.zeros(2, np.float32)),  # float labels
    ],
)
def test_array_dataset_refuses_bad_arrays(images, labels):
    with pytest.raises(ValueError):
        ArrayDataset(images, labels)
