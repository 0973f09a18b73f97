"""The embedded feature space end to end: training the evaluation network, evaluate_samples, bootstrap, compare."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deco_bench.metrics import api, embed_net
from deco_bench.metrics.adm_npz import SampleFormatError, TooFewImagesError
from deco_bench.metrics.bootstrap import resample_indices

NUM_CLASSES = 4


def _dataset(n: int, seed: int, shift: float = 0.0):
    """Class c = a coloured square at quadrant c on a noisy background (separable, so accuracy must rise)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n)
    img = rng.normal(90 + shift, 25, (n, 32, 32, 3))
    for i, c in enumerate(labels):
        y, x = (c // 2) * 16, (c % 2) * 16
        img[i, y + 2:y + 14, x + 2:x + 14, c % 3] += 120
    return img.clip(0, 255).astype(np.uint8), labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    images, labels = _dataset(192, 0)
    model, info = embed_net.train_feature_net(images, labels, epochs=4, seed=7, width=8, feature_dim=16, batch_size=32)
    path = tmp_path_factory.mktemp("evalnet") / "evalnet.pt"
    embed_net.save_feature_net(model, path, info)
    return model, info, path


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    d = tmp_path_factory.mktemp("embed-npz")
    np.savez(d / "ref.npz", arr_0=_dataset(64, 1)[0])
    np.savez(d / "good.npz", arr_0=_dataset(48, 2)[0])  # same distribution as the reference
    np.savez(d / "bad.npz", arr_0=_dataset(48, 3, shift=60.0)[0])  # brighter background
    return d


def test_training_learns_and_is_deterministic(trained):
    model, info, _ = trained
    assert info["train_accuracy"] > 0.9  # chance is 0.25
    assert info["loss_per_epoch"][-1] < info["loss_per_epoch"][0]
    again, _ = embed_net.train_feature_net(*_dataset(192, 0), epochs=4, seed=7, width=8, feature_dim=16, batch_size=32)
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    other, _ = embed_net.train_feature_net(*_dataset(192, 0), epochs=1, seed=8, width=8, feature_dim=16)
    assert not torch.equal(other.proj.weight, model.proj.weight)


def test_save_load_round_trip_gives_identical_features(trained):
    model, _, path = trained
    images = _dataset(5, 9)[0]
    a, b = embed_net.extract(model, images), embed_net.extract(embed_net.load_feature_net(path), images)
    np.testing.assert_array_equal(a["pool"], b["pool"])
    np.testing.assert_array_equal(a["logits"], b["logits"])


def test_training_refuses_bad_images():
    with pytest.raises(SampleFormatError):
        embed_net.train_feature_net(np.zeros((4, 3, 32, 32), np.uint8), np.zeros(4), epochs=1)


@pytest.fixture(scope="module")
def results(trained, batches):
    _, _, path = trained
    kw = dict(feature_space="embed", feature_net_path=path, num_images_expected=48, bootstrap=50, seed=3,
              cache_dir=batches / "cache")
    return {name: api.evaluate_samples(batches / f"{name}.npz", batches / "ref.npz", **kw) for name in ("good", "bad")}


def test_evaluate_samples_embed_names_and_sanity(results):
    good, bad = results["good"], results["bad"]
    assert set(good["metrics"]) == {api.FD_EMBED, api.IS_EMBED, api.PRECISION_EMBED, api.RECALL_EMBED, api.KID_EMBED}
    assert api.FID not in good["metrics"]  # never called FID in this feature space
    assert good["num_images"] == 48 and good["feature_space"] == "embed"
    assert good["extractor"]["weights_sha256"]
    # a shifted distribution is measurably worse
    assert bad["metrics"][api.FD_EMBED] > 2 * good["metrics"][api.FD_EMBED]
    assert bad["metrics"][api.PRECISION_EMBED] < good["metrics"][api.PRECISION_EMBED]
    for key, (lo, hi) in good["ci"].items():
        assert lo <= hi and len(good["bootstrap"][key]) == 50


def test_bootstrap_is_seeded_and_reuses_features(trained, batches, results):
    _, _, path = trained
    again = api.evaluate_samples(batches / "good.npz", batches / "ref.npz", feature_space="embed",
                                 feature_net_path=path, num_images_expected=48, bootstrap=50, seed=3,
                                 cache_dir=batches / "cache")
    assert again["ci"] == results["good"]["ci"]
    np.testing.assert_array_equal(resample_indices(10, 3, 0), resample_indices(10, 3, 0))
    assert not np.array_equal(resample_indices(10, 3, 0), resample_indices(10, 3, 1))


def test_compare_flags_a_real_difference_only(results):
    c = api.compare(results["good"], results["bad"])
    assert c[api.FD_EMBED]["method"] == "bootstrap-difference"
    assert c[api.FD_EMBED]["exceeds_interval"] is True and c[api.FD_EMBED]["difference"] > 0
    same = api.compare(results["good"], results["good"])
    assert same[api.FD_EMBED]["exceeds_interval"] is False
    # without replicates: non-overlapping intervals
    a = {"metrics": {"fid": 10.0}, "ci": {"fid": [9.0, 11.0]}}
    assert api.compare(a, {"metrics": {"fid": 13.0}, "ci": {"fid": [12.0, 14.0]}})["fid"]["exceeds_interval"]
    assert not api.compare(a, {"metrics": {"fid": 11.5}, "ci": {"fid": [10.5, 12.5]}})["fid"]["exceeds_interval"]


def test_too_few_images_is_refused(trained, batches):
    with pytest.raises(TooFewImagesError, match="48 images, 49"):
        api.evaluate_samples(batches / "good.npz", batches / "ref.npz", feature_space="embed",
                             feature_net_path=trained[2], num_images_expected=49, bootstrap=0)


def test_cache_is_keyed_by_content_not_name(trained, batches, tmp_path):
    from deco_bench.metrics.features import extract_npz

    ex = embed_net.load_feature_extractor(trained[2])
    cache = tmp_path / "cache"
    first = extract_npz(batches / "good.npz", ex, num_images=48, cache_dir=cache)
    renamed = tmp_path / "renamed.npz"
    renamed.write_bytes((batches / "good.npz").read_bytes())
    extract_npz(renamed, ex, num_images=48, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 1  # same content under another name: cache hit
    np.savez(renamed, arr_0=_dataset(48, 5)[0])  # same name, new content: new entry, new features
    changed = extract_npz(renamed, ex, num_images=48, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 2
    assert not np.allclose(changed["pool"], first["pool"])


def test_aggregate_seeds():
    agg = api.aggregate_seeds([{"metrics": {"fid": 1.0}}, {"metrics": {"fid": 3.0}}])
    assert agg["fid"] == {"mean": 2.0, "std": pytest.approx(np.sqrt(2.0)), "n": 2}
