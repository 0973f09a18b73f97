"""Our Inception pipeline against torch-fidelity's own calculate_metrics on the same images and weights file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deco_bench.metrics import api
from deco_bench.metrics.frechet import FeatureStats

from .conftest import N_SAMPLES


class _Images(torch.utils.data.Dataset):
    def __init__(self, nhwc: np.ndarray):
        self.x = torch.from_numpy(nhwc).permute(0, 3, 1, 2).contiguous()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


@pytest.fixture(scope="module")
def fidelity(adm_batches, inception_weights):
    import torch_fidelity

    return torch_fidelity.calculate_metrics(
        input1=_Images(adm_batches["samples"]), input2=_Images(adm_batches["ref"]),
        isc=True, fid=True, kid=True, prc=True, cuda=False, batch_size=8, cache=False, verbose=False,
        feature_extractor="inception-v3-compat", feature_extractor_weights_path=inception_weights,
        feature_extractor_internal_dtype="float64",  # NB: torch-fidelity 0.4.0 runs float32 for this
        save_cpu_ram=True,  # no DataLoader worker processes (2 shared cores)
        isc_splits=1,  # ADM's splits of 5,000 on 20 images = one split (shuffle order is then irrelevant)
        kid_subset_size=N_SAMPLES,  # our subset size is capped at the set size: same draws, same RNG order
    )


@pytest.fixture(scope="module")
def ours(inception_feats):
    ref_pool = inception_feats["ref"]["pool"]
    ref = api.Reference(pool=FeatureStats.from_features(ref_pool),
                        spatial=FeatureStats.from_features(inception_feats["ref"]["spatial"]),
                        pool_features=ref_pool)
    return api.compute_all(inception_feats["samples"], ref, names=api.INCEPTION_NAMES)["metrics"]


def test_fid_is_kid_match_torch_fidelity(ours, fidelity):
    assert ours[api.FID] > 1.0  # the two batches differ: a non-trivial number is being compared
    assert ours[api.FID] == pytest.approx(fidelity["frechet_inception_distance"], rel=1e-4)
    assert ours[api.IS] > 3.0
    assert ours[api.IS] == pytest.approx(fidelity["inception_score_mean"], rel=1e-4)
    assert ours[api.KID] == pytest.approx(fidelity["kernel_inception_distance_mean"], rel=1e-4)


def test_precision_recall_match_torch_fidelity(ours, fidelity):
    # same k=3 manifold estimator (squared vs plain distances order identically)
    assert ours[api.PRECISION] == pytest.approx(fidelity["precision"], abs=1e-6)
    assert ours[api.RECALL] == pytest.approx(fidelity["recall"], abs=1e-6)


def test_features_do_not_depend_on_batch_size(adm_batches, extractor, inception_feats):
    from deco_bench.metrics.features import extract

    assert extractor.net.fc.weight.dtype == torch.float64  # torch-fidelity's own float64 switch is a no-op
    images = adm_batches["samples"][:6]
    odd = extract([images[:1], images[1:4], images[4:6]], extractor)  # batch sizes 1, 3, 2
    for name in ("pool", "logits", "spatial"):  # float64 end to end: equal to ~1e-13, not just to float32 eps
        np.testing.assert_allclose(odd[name], inception_feats["samples"][name][:6], rtol=1e-10, atol=1e-12)


def test_spatial_is_mixed_6d_branch1x1_first_7_channels_nhwc(adm_batches, extractor):
    """Recompute mixed_6/conv by walking torch-fidelity's layers by hand; flatten in ADM's NHWC order."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    net, images = extractor.net, adm_batches["samples"][:2]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).to(extractor.dtype)
    x = (interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False) - 128) / 128
    with torch.no_grad():
        for name in ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1",
                     "Conv2d_4a_3x3", "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                     "Mixed_6c"]:
            x = getattr(net, name)(x)
        conv = net.Mixed_6d.branch1x1(x)  # (2, 192, 17, 17)
    expected = conv[:, :7].permute(0, 2, 3, 1).reshape(2, 2023).numpy()
    got = extractor(images)["spatial"]
    assert got.shape == (2, 17 * 17 * 7)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # channel-major (NCHW) flattening would be a different vector: the order is really being checked
    assert not np.allclose(got, conv[:, :7].reshape(2, 2023).numpy())


def test_compute_metrics_end_to_end(adm_batches, inception_weights, inception_sha, inception_feats, ours):
    got = api.compute_metrics(adm_batches["samples_path"], adm_batches["ref_path"],
                              inception_weights=inception_weights, inception_sha256=inception_sha,
                              cache_dir=inception_feats["cache_dir"])  # cache hit: same content, same extractor
    assert set(got) == {api.FID, api.SFID, api.IS, api.PRECISION, api.RECALL, api.KID}
    for key in got:
        assert got[key] == pytest.approx(ours[key], rel=1e-9)
    assert got[api.SFID] > 0.0


def test_stats_only_reference_is_used_as_is(tmp_path, adm_batches, inception_weights, inception_sha,
                                            inception_feats):
    """A reference holding only mu/sigma/mu_s/sigma_s is not recomputed: FID is against exactly those."""
    from deco_bench.metrics.frechet import FrechetToReference, frechet_distance

    rng = np.random.default_rng(0)
    d, ds = 2048, 2023
    mu, mu_s = rng.normal(0.2, 0.05, d), rng.normal(0.3, 0.05, ds)
    sigma, sigma_s = np.diag(rng.uniform(0.01, 0.02, d)), np.diag(rng.uniform(0.01, 0.02, ds))
    np.savez(tmp_path / "stats.npz", mu=mu, sigma=sigma, mu_s=mu_s, sigma_s=sigma_s)
    got = api.compute_metrics(adm_batches["samples_path"], tmp_path / "stats.npz",
                              inception_weights=inception_weights, inception_sha256=inception_sha,
                              cache_dir=inception_feats["cache_dir"])
    pool, spatial = inception_feats["samples"]["pool"], inception_feats["samples"]["spatial"]
    # exactly the file's statistics (to 1e-10), computed the way the API computes a distance from features ...
    assert got[api.FID] == pytest.approx(FrechetToReference(FeatureStats(mu, sigma, 0)).of_features(pool), rel=1e-10)
    assert got[api.SFID] == pytest.approx(FrechetToReference(FeatureStats(mu_s, sigma_s, 0)).of_features(spatial),
                                          rel=1e-10)
    # ... and equal to the distance of the samples' statistics (the d x d form) to the rounding of that form
    s = FeatureStats.from_features(pool)
    assert got[api.FID] == pytest.approx(frechet_distance(s.mu, s.sigma, mu, sigma), rel=1e-7)
    assert set(got) == {api.FID, api.SFID, api.IS}  # no images in the reference: no precision/recall/KID


def test_reference_written_by_us_scores_like_its_images(tmp_path, adm_batches, inception_weights, inception_sha,
                                                       inception_feats, ours):
    """Our reference statistics, written in ADM's format and read back, give the FID/sFID of the images they
    came from (the official evaluator would read the same mu/sigma/mu_s/sigma_s)."""
    from deco_bench.metrics.adm_npz import read_reference_stats, write_reference

    r = inception_feats["ref"]
    pool, spatial = FeatureStats.from_features(r["pool"]), FeatureStats.from_features(r["spatial"])
    write_reference(tmp_path / "ours_ref.npz", pool, spatial)
    back = read_reference_stats(tmp_path / "ours_ref.npz")
    np.testing.assert_array_equal(back.pool.sigma, pool.sigma)
    np.testing.assert_array_equal(back.spatial.mu, spatial.mu)
    got = api.compute_metrics(adm_batches["samples_path"], tmp_path / "ours_ref.npz",
                              inception_weights=inception_weights, inception_sha256=inception_sha,
                              cache_dir=inception_feats["cache_dir"])
    for key in (api.FID, api.SFID, api.IS):
        assert got[key] == pytest.approx(ours[key], rel=1e-9)


# ------------------------------------------------------------------ `deco-bench eval` (ADM's evaluator, public API)


def _eval(argv, capsys):
    from deco_bench.tools.cli import main

    code = main(["eval", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_prints_adm_lines_equal_to_compute_metrics_and_torch_fidelity(tmp_path, capsys, adm_batches,
                                                                           inception_weights, inception_sha,
                                                                           inception_feats, ours, fidelity):
    import json

    code, out, err = _eval([adm_batches["samples_path"], adm_batches["ref_path"], "--inception-weights",
                            inception_weights, "--inception-sha256", inception_sha, "--json", tmp_path / "m.json",
                            "--bootstrap", "2", "--cache-dir", inception_feats["cache_dir"]], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert [ln.split(": ")[0] for ln in lines] == ["Inception Score", "FID", "sFID", "Precision", "Recall"]
    printed = {k: float(ln.split(": ")[1]) for k, ln in zip([api.IS, api.FID, api.SFID, api.PRECISION, api.RECALL],
                                                             lines)}
    reference = api.compute_metrics(adm_batches["samples_path"], adm_batches["ref_path"],
                                    inception_weights=inception_weights, inception_sha256=inception_sha,
                                    cache_dir=inception_feats["cache_dir"])
    result = json.loads((tmp_path / "m.json").read_text())
    for key, value in printed.items():
        assert value == result["metrics"][key]
        if key in (api.IS, api.PRECISION, api.RECALL):
            assert value == reference[key] == ours[key]  # the same code on the same features: bit for bit
        else:  # eigh of a rank-12 covariance in ~2,000 dimensions: multi-threaded LAPACK varies in the last bits
            assert value == pytest.approx(reference[key], rel=1e-9) and value == pytest.approx(ours[key], rel=1e-9)
        assert len(result["ci"][key]) == 2
    assert printed[api.FID] == pytest.approx(fidelity["frechet_inception_distance"], rel=1e-4)
    assert printed[api.IS] == pytest.approx(fidelity["inception_score_mean"], rel=1e-4)
    assert printed[api.PRECISION] == pytest.approx(fidelity["precision"], abs=1e-4)
    assert printed[api.RECALL] == pytest.approx(fidelity["recall"], abs=1e-4)
    proto = result["protocol"]
    assert proto["extractor"]["weights_sha256"] == inception_sha and proto["num_images"] == N_SAMPLES
    assert proto["reference_sha256"] and proto["samples_sha256"] and proto["is_ordering"] == "file order (ADM)"
    assert result["ordering"]["class_sorted"] is False and "notice" not in err


def test_eval_names_a_class_sorted_file_and_reports_both_is(tmp_path, capsys, adm_batches, inception_weights,
                                                             inception_sha, inception_feats):
    import json

    labels = np.repeat(np.arange(3), N_SAMPLES // 3)  # three classes, one run each: written class by class
    np.savez(tmp_path / "sorted.npz", arr_0=adm_batches["samples"], arr_1=labels)
    code, out, err = _eval([tmp_path / "sorted.npz", adm_batches["ref_path"], "--inception-weights",
                            inception_weights, "--inception-sha256", inception_sha, "--json", tmp_path / "m.json",
                            "--bootstrap", "0", "--cache-dir", inception_feats["cache_dir"], "--quiet"], capsys)
    assert code == 0, err
    assert "is sorted by class (the file's labels come in 3 contiguous runs, one per class)" in err
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["ordering"]["class_sorted"] is True
    assert result["is_file_order"] == result["metrics"][api.IS]
    assert "is_permuted" in result and "permuted" in result["protocol"]["is_ordering"]
    assert out.splitlines()[0] == f"Inception Score: {result['metrics'][api.IS]}"


def _bad_inputs(tmp_path, good):
    cut = tmp_path / "truncated.npz"
    data = open(good, "rb").read()
    cut.write_bytes(data[: len(data) // 2])
    rng = np.random.default_rng(0)
    files = {
        "float01.npz": dict(arr_0=rng.uniform(0, 1, (4, 32, 32, 3)).astype(np.float32)),
        "outofrange.npz": dict(arr_0=rng.uniform(-40, 300, (4, 32, 32, 3)).astype(np.float32)),
        "nchw.npz": dict(arr_0=rng.integers(0, 255, (4, 3, 32, 32), dtype=np.uint8)),
        "gray.npz": dict(arr_0=rng.integers(0, 255, (4, 32, 32), dtype=np.uint8)),
        "one.npz": dict(arr_0=rng.integers(0, 255, (1, 32, 32, 3), dtype=np.uint8)),
        "empty.npz": dict(arr_0=np.zeros((0, 32, 32, 3), np.uint8)),
        "noarr.npz": dict(images=rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)),
    }
    for name, arrays in files.items():
        np.savez(tmp_path / name, **arrays)
    (tmp_path / "text.npz").write_text("hello")
    return {cut.name: "truncated or corrupt", "float01.npz": "expected dtype uint8.*values lie in \\[0",
            "outofrange.npz": "expected dtype uint8.*values lie in \\[-", "nchw.npz": "looks like NCHW",
            "gray.npz": "expected a \\(N, H, W, 3\\) array", "one.npz": "holds 1 image",
            "empty.npz": "holds 0 image", "noarr.npz": "no array 'arr_0'", "text.npz": "not a readable .npz",
            "absent.npz": "not found"}


def test_eval_bad_inputs_exit_2_with_one_named_line(tmp_path, capsys, adm_batches, inception_weights):
    import re

    for name, pattern in _bad_inputs(tmp_path, adm_batches["samples_path"]).items():
        code, out, err = _eval([tmp_path / name, adm_batches["ref_path"], "--inception-weights", inception_weights,
                                "--inception-sha256", "none", "--quiet"], capsys)
        assert code == 2 and out == "", name
        assert len(err.splitlines()) == 1 and err.startswith("error: ") and name in err, err
        assert re.search(pattern, err), (name, err)
    # a bad reference, and a wrong weights hash, are named the same way
    code, _, err = _eval([adm_batches["samples_path"], tmp_path / "truncated.npz", "--inception-weights",
                          inception_weights, "--inception-sha256", "none", "--quiet"], capsys)
    assert code == 2 and "truncated.npz" in err and len(err.splitlines()) == 1
    code, _, err = _eval([adm_batches["samples_path"], adm_batches["ref_path"], "--inception-weights",
                          inception_weights, "--quiet"], capsys)  # random weights: not the published file
    assert code == 2 and "expected 6726825d" in err and len(err.splitlines()) == 1
