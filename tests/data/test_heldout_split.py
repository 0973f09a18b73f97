"""The held-out real split: deterministic, ordered like a sample set, and disjoint from the train and reference crops."""

import numpy as np
import pytest

from deco_bench.data.embedded import build_embedded_dataset, build_heldout_split


def test_heldout_is_ordered_like_samples_deterministic_and_new():
    kw = dict(resolution=16, num_classes=3, seed=0, crop_fraction=(0.5, 0.9))
    images, labels = build_heldout_split(num_images=10, **kw)
    assert images.shape == (10, 16, 16, 3) and images.dtype == np.uint8
    assert labels.tolist() == [i % 3 for i in range(10)]  # image i has class i mod C, like a sample set
    again, _ = build_heldout_split(num_images=10, **kw)
    assert np.array_equal(images, again)
    ds = build_embedded_dataset(resolution=16, num_classes=3, train_per_class=8, ref_per_class=8, seed=0,
                                crop_fraction=(0.5, 0.9))
    known = {im.tobytes() for im in np.concatenate([ds.train_images, ds.ref_images])}
    assert not any(im.tobytes() in known for im in images)  # a third split: no crop is shared


def test_crop_scale_reaches_the_crops_and_bad_values_are_named():
    whole = build_embedded_dataset(resolution=16, num_classes=1, train_per_class=4, ref_per_class=1, seed=0,
                                   crop_fraction=(1.0, 1.0))
    assert all(np.array_equal(whole.train_images[0], im) or np.array_equal(whole.train_images[0][:, ::-1], im)
               for im in whole.train_images)  # the whole short side: one crop, up to its horizontal flip
    with pytest.raises(ValueError, match="data.crop_scale"):
        build_embedded_dataset(resolution=16, num_classes=1, crop_fraction=(0.9, 0.2))
