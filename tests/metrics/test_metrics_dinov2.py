"""FD-DINOv2: class-token parity with facebookresearch/dinov2's code (tiny ViT, synthetic weights), the Fréchet
distance on those features, batch-size invariance, evaluate_samples wiring with a bootstrap interval, file errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from deco_bench.io import ChecksumError, MissingFileError, sha256_file
from deco_bench.metrics import FD_DINOV2, api, dinov2, weights
from deco_bench.metrics.features import extract, extract_npz
from deco_bench.metrics.frechet import FeatureStats, frechet_distance, stats_distance

from .conftest import N_REF, N_SAMPLES, blobs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def golden():
    return torch.load(FIXTURES / "metrics" / "dinov2_cls.pt", weights_only=True)


@pytest.fixture(scope="module")
def tiny_weights(golden, tmp_path_factory) -> tuple[str, str]:
    """A tiny DINOv2 in the official key format (mask_token, 37 x 37 pos_embed), saved like the released file."""
    spec = importlib.util.spec_from_file_location("reference_nets", FIXTURES / "diffusion" / "reference_nets.py")
    nets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nets)
    state = nets.synthetic_dinov2_state_dict([(k, tuple(s)) for k, s in golden["keys_shapes"]],
                                             seed=golden["weights_seed"])
    path = tmp_path_factory.mktemp("dinov2") / "dinov2_vitl14_pretrain.pth"
    torch.save(state, path)
    return str(path), sha256_file(path)


@pytest.fixture(scope="module")
def extractor(tiny_weights):
    path, sha = tiny_weights
    return dinov2.load_extractor(path, sha256=sha, device="cpu")


def test_cls_token_matches_official_dinov2(golden, tiny_weights):
    path, sha = tiny_weights
    vit, digest = dinov2.load_dinov2(path, sha256=sha)
    assert digest == sha
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(golden["input_seed"]))
    with torch.no_grad():
        cls = vit.forward_features(x)[:, 0]
    torch.testing.assert_close(cls, golden["cls"], atol=1e-4, rtol=1e-4)
    # the patch tokens would not do: they differ from the class token
    assert (vit.forward_features(x)[:, 1] - golden["cls"]).abs().max() > 1e-2


def test_preprocess_normalises_and_follows_pil_bicubic():
    from PIL import Image

    images = blobs(2, 3, 1.0).repeat(7, axis=1).repeat(7, axis=2)  # (2, 224, 224, 3): no resize needed
    x = dinov2.preprocess(images)
    expected = (torch.from_numpy(images).permute(0, 3, 1, 2).double() / 255 - torch.tensor(
        dinov2.IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(
        dinov2.IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    torch.testing.assert_close(x, expected, atol=1e-12, rtol=0)
    # 256 -> 224 (the ImageNet 256 case): close to dgm-eval's PIL bicubic Resize((224, 224)) of the uint8 image
    big = blobs(2, 4, 1.0).repeat(8, axis=1).repeat(8, axis=2)  # (2, 256, 256, 3)
    ours = dinov2.preprocess(big)
    pil = np.stack([np.asarray(Image.fromarray(im).resize((224, 224), Image.BICUBIC)) for im in big])
    theirs = dinov2.preprocess(pil)
    std = torch.tensor(dinov2.IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    gap = float(((ours - theirs) * std).abs().mean() * 255)  # mean gap in uint8 steps (PIL re-quantises)
    assert gap < 0.3  # 0.14 with antialias; without it (torch default) 0.97


@pytest.fixture(scope="module")
def feats(adm_batches, extractor):
    shifted = (adm_batches["samples"].astype(np.int16) + 60).clip(0, 255).astype(np.uint8)
    return {"samples": extract([adm_batches["samples"]], extractor)["pool"],
            "ref": extract([adm_batches["ref"]], extractor)["pool"],
            "shifted": extract([shifted], extractor)["pool"]}


def test_fd_dinov2_self_zero_shift_positive(feats):
    ref = FeatureStats.from_features(feats["ref"])
    self_fd = stats_distance(ref, ref)
    shifted_fd = stats_distance(FeatureStats.from_features(feats["shifted"]),
                                FeatureStats.from_features(feats["samples"]))
    assert shifted_fd > 1e-3
    assert abs(self_fd) < 1e-6 * shifted_fd


def test_features_do_not_depend_on_batch_size(adm_batches, extractor, feats):
    images = adm_batches["samples"]
    ones = extract([images[i:i + 1] for i in range(len(images))], extractor)["pool"]
    fives = extract([images[i:i + 5] for i in range(0, len(images), 5)], extractor)["pool"]
    np.testing.assert_allclose(ones, feats["samples"], rtol=1e-9, atol=1e-12)
    ref = FeatureStats.from_features(feats["ref"])
    fds = [stats_distance(FeatureStats.from_features(f), ref) for f in (ones, fives, feats["samples"])]
    assert max(fds) - min(fds) <= 1e-6 * abs(fds[0])


@pytest.fixture(scope="module")
def embed_net(adm_batches, tmp_path_factory) -> str:
    from deco_bench.metrics.embed_net import save_feature_net, train_feature_net

    model, _ = train_feature_net(adm_batches["ref"], np.arange(N_REF) % 2, epochs=1, width=4, feature_dim=8)
    path = tmp_path_factory.mktemp("embed") / "net.pt"
    save_feature_net(model, path)
    return str(path)


def test_evaluate_samples_adds_fd_dinov2_with_interval(adm_batches, embed_net, tiny_weights, feats, tmp_path):
    path, sha = tiny_weights
    kw = dict(feature_space="embed", feature_net_path=embed_net, num_images_expected=N_SAMPLES, bootstrap=20,
              seed=3, batch_size=5)
    res = api.evaluate_samples(adm_batches["samples_path"], adm_batches["ref_path"], dinov2_weights=path,
                               dinov2_sha256=sha, cache_dir=tmp_path, **kw)
    direct = frechet_distance(*_mu_sigma(feats["samples"]), *_mu_sigma(feats["ref"]))
    assert res["metrics"][FD_DINOV2] == pytest.approx(direct, rel=1e-6)
    assert res["extractor_dinov2"]["weights_sha256"] == sha and res["extractor_dinov2"]["layers"] == "x_norm_clstoken"
    # the bootstrap replicates are those of compute_all's scheme: FD on resampled features, same indices
    idx = api.bs.resample_indices(N_SAMPLES, 20, 3)
    ref = FeatureStats.from_features(feats["ref"])
    replicate_0 = frechet_distance(*_mu_sigma(feats["samples"][idx[0]]), ref.mu, ref.sigma)
    assert res["bootstrap"][FD_DINOV2][0] == pytest.approx(replicate_0, rel=1e-6)
    lo, hi = res["ci"][FD_DINOV2]
    assert lo < hi and len(res["bootstrap"][FD_DINOV2]) == 20
    # without dinov2 weights the metric is absent and the other metrics are unchanged
    plain = api.evaluate_samples(adm_batches["samples_path"], adm_batches["ref_path"], cache_dir=tmp_path, **kw)
    assert FD_DINOV2 not in plain["metrics"] and FD_DINOV2 not in plain["ci"]
    assert {k: v for k, v in res["metrics"].items() if k != FD_DINOV2} == plain["metrics"]


def test_statistics_only_reference_skips_fd_dinov2(adm_batches, embed_net, tiny_weights, tmp_path):
    from deco_bench.metrics.embed_net import load_feature_extractor

    ext = load_feature_extractor(embed_net)
    ref_feats = extract_npz(adm_batches["ref_path"], ext, num_images=N_REF)["pool"]
    stats = FeatureStats.from_features(ref_feats)
    np.savez(tmp_path / "stats.npz", mu=stats.mu, sigma=stats.sigma)
    res = api.evaluate_samples(adm_batches["samples_path"], tmp_path / "stats.npz", feature_space="embed",
                               feature_net_path=embed_net, num_images_expected=N_SAMPLES, bootstrap=0,
                               dinov2_weights=tiny_weights[0], dinov2_sha256=tiny_weights[1])
    assert FD_DINOV2 not in res["metrics"] and "no arr_0" in res["skipped"][FD_DINOV2]


def test_missing_weights_name_path_and_url(tmp_path, adm_batches, embed_net):
    missing = tmp_path / "nowhere" / "dinov2_vitl14_pretrain.pth"
    with pytest.raises(MissingFileError) as e:
        dinov2.load_extractor(missing)
    assert str(missing) in str(e.value) and weights.MANIFEST[weights.DINOV2_VITL14].url in str(e.value)
    with pytest.raises(MissingFileError) as e:
        dinov2.load_extractor(missing, arch="vitb14")
    assert weights.MANIFEST[weights.DINOV2_VITB14].url in str(e.value)
    cache = tmp_path / "cache"
    with pytest.raises(MissingFileError, match="dinov2_vitl14_pretrain.pth"):
        api.evaluate_samples(adm_batches["samples_path"], adm_batches["ref_path"], feature_space="embed",
                             feature_net_path=embed_net, num_images_expected=N_SAMPLES, dinov2_weights=missing,
                             cache_dir=cache)
    assert not cache.exists() or not any(cache.iterdir())  # refused before any feature extraction


def test_bad_weights_are_refused(tiny_weights, tmp_path):
    with pytest.raises(ChecksumError):
        dinov2.load_dinov2(tiny_weights[0], sha256="0" * 64)
    with pytest.raises(ChecksumError):  # an unpinned file must at least have the released size (1.2 GB)
        dinov2.load_dinov2(tiny_weights[0])
    with pytest.raises(ValueError, match="arch"):
        dinov2.load_dinov2(tiny_weights[0], arch="vitg14")
    state = torch.load(tiny_weights[0], weights_only=True)
    state["blocks.0.mlp.w12.weight"] = state.pop("blocks.0.mlp.fc1.weight")
    torch.save(state, tmp_path / "swiglu.pth")
    with pytest.raises(ValueError, match="SwiGLU"):
        dinov2.load_dinov2(tmp_path / "swiglu.pth", arch="vitb14", sha256=None)  # ViT-B: no size pinned


def _mu_sigma(x: np.ndarray):
    s = FeatureStats.from_features(x)
    return s.mu, s.sigma
