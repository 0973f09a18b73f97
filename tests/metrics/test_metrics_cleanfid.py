"""clean-fid cross-check backend: our npz plumbing around clean-fid gives exactly what clean-fid's own folder
pipeline gives (same TorchScript file, PNGs of the same images), offline, with named errors.

The real `inception-2015-12-05.pt` cannot be fetched here, so a small scripted module with its interface stands in
(the manifest's pinned sha256 is replaced by the stand-in's for the tests that load it, `pinned_to_the_stand_in`):
forward(img, return_features=True) resizes to 299 inside (legacy_tensorflow) and `.layers` takes normalised 299 px
input (clean mode); both give 2048 features, of which only the first VARYING vary (the rest are constant 0, like dead
units). clean-fid's scipy sqrtm of a 2048 x 2048 product costs ~10 s on one core whatever the content, so the module
runs it twice in all (one fixture) and checks the rest through a spy on clean-fid's frechet_distance.
"""

from __future__ import annotations

import dataclasses
import socket
import urllib.request

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from deco_bench.io import MissingFileError, sha256_file
from deco_bench.metrics import cleanfid_backend as cb
from deco_bench.metrics import weights
from deco_bench.metrics.adm_npz import CorruptFileError
from deco_bench.metrics.frechet import FeatureStats, stats_distance

from .conftest import blobs

N = 10
VARYING = 32
PINNED = weights.MANIFEST[weights.INCEPTION_CLEANFID]  # as shipped: the real file's sha256


class _Layers(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.proj = nn.Parameter(torch.randn(48, VARYING, generator=g) / 48 ** 0.5)
        self.bias = nn.Parameter(0.1 * torch.randn(VARYING, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, 3, 299, 299) in [-1, 1] -> (b, 2048, 1, 1)
        h = torch.tanh(F.adaptive_avg_pool2d(x, 4).flatten(1) @ self.proj + self.bias)  # (b, VARYING)
        return F.pad(h, (0, 2048 - h.shape[1]))[:, :, None, None]


class _FakeInception(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = _Layers()

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = F.interpolate(img, size=(299, 299), mode="bilinear", align_corners=False)  # resize inside, as TF's
        return self.layers((x - 128) / 128)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("cleanfid")
    torch.jit.script(_FakeInception()).save(str(d / "my-inception.pt"))  # not clean-fid's file name on purpose
    samples, ref = blobs(N, 11, 1.0), blobs(N, 12, 0.6)
    np.savez(d / "samples.npz", arr_0=samples)
    np.savez(d / "ref.npz", arr_0=ref)
    return {"dir": d, "weights": str(d / "my-inception.pt"), "sha256": sha256_file(d / "my-inception.pt"),
            "samples": samples, "ref": ref}


@pytest.fixture(scope="module")
def pinned_to_the_stand_in(setup):
    """The manifest pins the stand-in's sha256 (as it pins the real file's), so the loading path is the real one."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(weights.MANIFEST, weights.INCEPTION_CLEANFID, dataclasses.replace(PINNED, sha256=setup["sha256"]))
        yield


def _cleanfid_own_features(images: np.ndarray, folder, weights_file: str, mode: str) -> np.ndarray:
    """clean-fid's folder pipeline (PNG files -> ResizeDataset -> model), its model built from the same file."""
    import shutil

    from PIL import Image
    from cleanfid.fid import get_folder_features
    from cleanfid.inception_torchscript import InceptionV3W

    folder.mkdir(parents=True)
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"img_{i:04d}.png")  # lossless: same uint8 values
    shutil.copy(weights_file, folder.parent / "inception-2015-12-05.pt")
    model = InceptionV3W(str(folder.parent), download=False, resize_inside=mode == "legacy_tensorflow").eval()
    return get_folder_features(str(folder), lambda x: model(x), num_workers=0, batch_size=4,
                               device=torch.device("cpu"), mode=mode, verbose=False)


@pytest.mark.parametrize("mode", ["legacy_tensorflow", "clean"])
def test_features_equal_cleanfid_folder_pipeline(setup, pinned_to_the_stand_in, mode, tmp_path):
    model = cb.load_feature_model(setup["weights"], mode=mode, device="cpu")
    ours = cb.features_from_npz(setup["dir"] / "samples.npz", model, mode=mode, batch_size=4, device="cpu")
    theirs = _cleanfid_own_features(setup["samples"], tmp_path / "imgs", setup["weights"], mode)
    assert ours.shape == (N, 2048)
    np.testing.assert_array_equal(ours, theirs)


@pytest.fixture(scope="module")
def fids(setup, pinned_to_the_stand_in):
    """cleanfid_fid(samples, ref) and cleanfid_fid(samples, samples), with the arguments clean-fid's
    frechet_distance received and what it returned (a spy around the real function)."""
    import cleanfid.fid

    real, calls = cleanfid.fid.frechet_distance, []

    def spy(*args, **kwargs):
        calls.append((args, real(*args, **kwargs)))
        return calls[-1][1]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cleanfid.fid, "frechet_distance", spy)
        d = setup["dir"]
        sr = cb.cleanfid_fid(d / "samples.npz", d / "ref.npz", weights_path=setup["weights"], batch_size=4,
                             device="cpu")
        ss = cb.cleanfid_fid(d / "samples.npz", d / "samples.npz", weights_path=setup["weights"], device="cpu")
    return {"sr": sr, "ss": ss, "calls": calls}


def test_fid_equals_cleanfid_frechet_on_its_features(setup, fids, tmp_path):
    s = _cleanfid_own_features(setup["samples"], tmp_path / "a" / "imgs", setup["weights"], "legacy_tensorflow")
    r = _cleanfid_own_features(setup["ref"], tmp_path / "b" / "imgs", setup["weights"], "legacy_tensorflow")
    (mu1, sigma1, mu2, sigma2), returned = fids["calls"][0]
    # clean-fid's frechet_distance got exactly the statistics of clean-fid's own features (so, being deterministic,
    # it gives exactly the value it would give on them), and cleanfid_fid returns its value unchanged
    for got, want in ((mu1, s.mean(0)), (sigma1, np.cov(s, rowvar=False)), (mu2, r.mean(0)),
                      (sigma2, np.cov(r, rowvar=False))):
        np.testing.assert_array_equal(got, want)
    assert fids["sr"] == float(returned) and fids["sr"] > 1e-2 and len(fids["calls"]) == 2
    # and our own Fréchet maths on the same features agrees (independent square root: eigh instead of sqrtm)
    ours = stats_distance(FeatureStats.from_features(s), FeatureStats.from_features(r))
    assert ours == pytest.approx(fids["sr"], rel=1e-4)


def test_fid_of_a_set_with_itself_is_zero(fids):
    assert abs(fids["ss"]) < 1e-6 * fids["sr"]


def test_cli_prints_the_fid(monkeypatch, capsys):
    seen = {}

    def fake(samples, reference, **kw):
        seen.update(kw, samples=samples, reference=reference)
        return 12.25

    monkeypatch.setattr(cb, "cleanfid_fid", fake)
    cb.main(["s.npz", "r.npz", "--weights", "w.pt", "--batch-size", "7", "--mode", "clean"])
    assert float(capsys.readouterr().out.strip()) == 12.25
    assert seen == {"samples": "s.npz", "reference": "r.npz", "weights_path": "w.pt", "mode": "clean",
                    "batch_size": 7}
    with pytest.raises(SystemExit):  # no way to vouch for another file from the command line
        cb.main(["s.npz", "r.npz", "--weights", "w.pt", "--sha256", "ab"])


def test_missing_weights_name_path_and_url(setup, tmp_path):
    missing = tmp_path / "nowhere" / "inception-2015-12-05.pt"
    with pytest.raises(MissingFileError) as e:
        cb.cleanfid_fid(setup["dir"] / "samples.npz", setup["dir"] / "ref.npz", weights_path=missing)
    assert str(missing) in str(e.value)
    assert "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt" in str(
        e.value) and weights.MANIFEST[weights.INCEPTION_CLEANFID].url in str(e.value)


def test_bad_inputs_are_refused(setup, pinned_to_the_stand_in, tmp_path):
    with pytest.raises(ValueError, match="mode"):
        cb.load_feature_model(setup["weights"], mode="legacy_pytorch")
    np.savez(tmp_path / "stats.npz", mu=np.zeros(2048), sigma=np.eye(2048))
    with pytest.raises(CorruptFileError, match="arr_0"):
        cb.cleanfid_fid(setup["dir"] / "samples.npz", tmp_path / "stats.npz", weights_path=setup["weights"])


def test_torchscript_is_refused_unless_it_has_the_pinned_sha256(setup, monkeypatch):
    """The TorchScript file runs code when loaded: any file but the one whose sha256 the manifest pins (the value
    crowsonkb/k-diffusion pins for NVIDIA's URL) is refused before clean-fid or torch sees it, from the API and the
    command line alike."""
    import cleanfid.features

    assert PINNED.sha256 == "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4"
    assert PINNED.executes_code and PINNED.url.endswith("/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt")
    monkeypatch.setitem(weights.MANIFEST, weights.INCEPTION_CLEANFID, PINNED)  # as shipped (whatever fixtures did)

    def loaded(*a, **k):
        raise AssertionError("the TorchScript file was handed to clean-fid")

    monkeypatch.setattr(cleanfid.features, "build_feature_extractor", loaded)
    monkeypatch.setattr(torch.jit, "load", loaded)
    expected = (f"inception-v3-cleanfid (clean-fid legacy_tensorflow cross-check): weights file {setup['weights']} has "
                f"sha256 {setup['sha256']}, expected {PINNED.sha256} (corrupt, truncated or a different file).")
    with pytest.raises(weights.ChecksumError) as e:
        cb.load_feature_model(setup["weights"], device="cpu")
    assert str(e.value).startswith(expected)
    with pytest.raises(weights.ChecksumError):
        cb.main([str(setup["dir"] / "samples.npz"), str(setup["dir"] / "ref.npz"), "--weights", setup["weights"]])
    monkeypatch.setitem(weights.MANIFEST, weights.INCEPTION_CLEANFID, dataclasses.replace(PINNED, sha256=None))
    with pytest.raises(weights.UnpinnedWeightsError):  # a manifest without a pin would never load it unchecked
        cb.load_feature_model(setup["weights"], device="cpu")
