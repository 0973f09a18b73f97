"""The manifest and the check of every file a parameter set names (weights.required_files / check_files /
verify_all): small temporary files, the manifest's expected hash monkeypatched, never a download."""

from __future__ import annotations

import dataclasses
import re
import urllib.request
from pathlib import Path

import pytest

from deco_bench import profiles
from deco_bench.config import parse_params
from deco_bench.io import ChecksumError, DecoBenchError, MissingFileError, sha256_file
from deco_bench.metrics import weights
from deco_bench import config

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
INCEPTION_SHA = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
VITB14_SHA = "0b8b82f85de91b424aded121c7e1dcc2b7bc6d0adeea651bf73a13307fad8c73"
VITL14_SHA = "d5383ea8f4877b2472eb973e0fd72d557c7da5d3611bd527ceeb1d7162cbf428"
ADM_256_URL = ("https://openaipublic.blob.core.windows.net/diffusion/jul-2021/ref_batches/imagenet/256/"
               "VIRTUAL_imagenet256_labeled.npz")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def params_naming(folder: Path, *, repa: str = "", init_from: str = "", inception: str = "", reference: str = ""):
    """The default profile, with these files named (relative names are under `folder`)."""
    raw = profiles.resolve("default", EXPERIMENTS)
    if repa:
        raw["train"].update(repa_encoder="dinov2-b14", repa_encoder_weights=str(folder / repa))
    if init_from:
        raw["models"]["deco"]["init_from"] = str(folder / init_from)
    raw["evaluate"].update(inception_weights=str(folder / inception) if inception else "",
                           reference=str(folder / reference) if reference else "")
    return parse_params(raw)


def pin(monkeypatch, name: str, sha256: str | None) -> None:
    monkeypatch.setitem(weights.MANIFEST, name, dataclasses.replace(weights.MANIFEST[name], sha256=sha256))


# ------------------------------------------------------------------------------------------------- the manifest


def test_published_hashes_are_pinned_and_every_other_entry_says_why_not():
    m = weights.MANIFEST
    assert m[weights.INCEPTION].sha256 == INCEPTION_SHA
    assert m[weights.DINOV2_VITB14].sha256 == VITB14_SHA
    assert m[weights.DINOV2_VITL14].sha256 == VITL14_SHA
    # clean-fid's TorchScript: the value crowsonkb/k-diffusion (k_diffusion/evaluation.py) pins for NVIDIA's URL
    assert m[weights.INCEPTION_CLEANFID].sha256 == "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4"
    unpinned = sorted(name for name, e in m.items() if e.sha256 is None)
    assert weights.INCEPTION_CLEANFID not in unpinned and {weights.ADM_REF_256, weights.ADM_REF_512} <= set(unpinned)
    for e in m.values():
        if e.sha256 is None:
            assert e.no_hash_reason, e.name
        else:
            assert re.fullmatch("[0-9a-f]{64}", e.sha256) and not e.no_hash_reason, e.name
        suffix = re.search(r"-([0-9a-f]{8})\.\w+$", e.filename)  # torch.hub names: the sha256's first 8 hex digits
        if suffix:
            assert e.sha256 is not None and e.sha256.startswith(suffix.group(1)), e.name
    assert [e.name for e in m.values() if e.executes_code] == [weights.INCEPTION_CLEANFID]


# -------------------------------------------------------------------------------------------- required_files


def test_required_files_of_the_paper_512_profile():
    p = profiles.load_profile("imagenet512-xl", EXPERIMENTS)
    got = [(f.param, str(f.path), f.entry.name if f.entry else None) for f in config.required_files(p)]
    assert got == [
        ("train.repa_encoder_weights", "weights/dinov2_vitb14_pretrain.pth", weights.DINOV2_VITB14),
        ("models.deco.init_from", "weights/deco-xl-256-step1600000.pt", None),
        ("models.baseline.init_from", "weights/baseline-xl-256-step1600000.pt", None),
        ("evaluate.inception_weights", "weights/weights-inception-2015-12-05-6726825d.pth", weights.INCEPTION),
        ("evaluate.reference", "weights/VIRTUAL_imagenet512.npz", weights.ADM_REF_512),
    ]


def test_the_embedded_default_names_no_file():
    assert config.required_files(profiles.load_profile("default", EXPERIMENTS)) == []
    assert weights.verify_all([]) == []


# ---------------------------------------------------------------------------------------- one file at a time


def test_missing_pinned_file_names_parameter_file_hash_and_source(tmp_path):
    p = params_naming(tmp_path, inception="weights-inception-2015-12-05-6726825d.pth")
    with pytest.raises(MissingFileError) as e:
        weights.verify_all(config.required_files(p))
    path = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    assert str(e.value) == (
        f"evaluate.inception_weights: {path} not found (FID/sFID/IS/precision/recall/KID (ADM protocol); expected "
        f"sha256 {INCEPTION_SHA}). Get it from https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
        f"weights-inception-2015-12-05-6726825d.pth and place it at {path} (pytorch-fid's "
        "pt_inception-2015-12-05-6726825d.pth (https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth) is the same file: renaming it is fine).")
    assert "\n" not in str(e.value)


def test_wrong_hash_is_refused_with_both_hashes(tmp_path, monkeypatch):
    f = tmp_path / "dinov2_vitb14_pretrain.pth"
    f.write_bytes(b"not the DINOv2 weights")
    p = params_naming(tmp_path, repa="dinov2_vitb14_pretrain.pth")
    with pytest.raises(ChecksumError) as e:
        weights.verify_all(config.required_files(p))
    assert str(e.value) == (
        f"train.repa_encoder_weights: {f} has sha256 {sha256_file(f)}, expected {VITB14_SHA} (DINOv2 ViT-B/14: the "
        "REPA encoder, and FD-DINOv2 (ViT-B/14); corrupt, truncated or a different file). Get it from "
        f"https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth and place it at {f}.")


def test_correct_file_passes_and_its_hash_is_returned(tmp_path, monkeypatch):
    f = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    f.write_bytes(b"a small stand-in for the Inception weights")
    pin(monkeypatch, weights.INCEPTION, sha256_file(f).upper())  # case does not matter
    checks = weights.verify_all(config.required_files(params_naming(tmp_path, inception=f.name)))
    assert [(c.file.param, c.sha256, c.problem) for c in checks] == [
        ("evaluate.inception_weights", sha256_file(f), None)]
    f.write_bytes(b"a small stand-in for the Inception weightS")  # one byte changed
    with pytest.raises(ChecksumError, match=sha256_file(f)):
        weights.verify_all(config.required_files(params_naming(tmp_path, inception=f.name)))


def test_reference_without_published_hash_says_so_and_where_to_get_it(tmp_path):
    p = params_naming(tmp_path, reference="VIRTUAL_imagenet256_labeled.npz")
    ref = tmp_path / "VIRTUAL_imagenet256_labeled.npz"
    with pytest.raises(MissingFileError) as e:
        weights.verify_all(config.required_files(p))
    assert str(e.value) == (
        f"evaluate.reference: {ref} not found (ADM reference batch, ImageNet 256x256; no published sha256: OpenAI "
        "publishes no sha256 for the ADM reference batches, so only its presence is checked; the prepare stage "
        f"records the sha256 of the copy it found in data/info.json). Get it from {ADM_256_URL} and place it at {ref}.")
    ref.write_bytes(b"any content: presence only")
    (check,) = weights.verify_all(config.required_files(p))
    assert check.problem is None and check.sha256 == sha256_file(ref)  # recorded, not compared


def test_own_files_are_checked_for_presence_only(tmp_path):
    p = params_naming(tmp_path, init_from="init.pt", reference="my_reference.npz")
    with pytest.raises(MissingFileError) as e:
        weights.verify_all(config.required_files(p))
    assert str(e.value).splitlines() == [
        f"models.deco.init_from: {tmp_path / 'init.pt'} not found (a deco-bench EMA checkpoint of an earlier run of "
        "your own (runs/<model>/final.pt or runs/<model>/eval_ckpts/step_*.pt), not a download; see the profile's "
        "comments; no sha256 to check, presence only).",
        f"evaluate.reference: {tmp_path / 'my_reference.npz'} not found (an ADM-format reference batch (.npz) of "
        "your own; the manifest lists ADM's VIRTUAL_imagenet256_labeled.npz and VIRTUAL_imagenet512.npz; no sha256 "
        "to check, presence only).",
    ]
    (tmp_path / "init.pt").write_bytes(b"x")
    (tmp_path / "my_reference.npz").write_bytes(b"y")
    assert [(c.sha256, c.problem) for c in weights.verify_all(config.required_files(p))] == [(None, None)] * 2


def test_every_file_is_checked_and_every_problem_reported_one_line_each(tmp_path, monkeypatch):
    good = tmp_path / "VIRTUAL_imagenet256_labeled.npz"
    good.write_bytes(b"reference")
    (tmp_path / "dinov2_vitb14_pretrain.pth").write_bytes(b"wrong")
    p = params_naming(tmp_path, repa="dinov2_vitb14_pretrain.pth", init_from="init.pt",
                      inception="weights-inception-2015-12-05-6726825d.pth", reference=good.name)
    checks = weights.check_files(config.required_files(p))
    assert [(c.file.param, type(c.problem).__name__) for c in checks] == [
        ("train.repa_encoder_weights", "ChecksumError"), ("models.deco.init_from", "MissingFileError"),
        ("evaluate.inception_weights", "MissingFileError"), ("evaluate.reference", "NoneType")]
    with pytest.raises(DecoBenchError) as e:  # a mix of problems: the base class, one line per unusable file
        weights.verify_all(config.required_files(p))
    assert type(e.value) is DecoBenchError
    assert str(e.value).splitlines() == [str(c.problem) for c in checks[:3]]
    assert [(type(x), str(x)) for x in e.value.problems] == [(type(c.problem), str(c.problem)) for c in checks[:3]]


# ---------------------------------------------------------------------------------------------------- resolve


def test_resolve_no_hash_entry_missing_says_no_published_hash(tmp_path):
    with pytest.raises(MissingFileError) as e:
        weights.resolve(weights.ADM_REF_256, cache_dir_override=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "VIRTUAL_imagenet256_labeled.npz") in msg and ADM_256_URL in msg
    assert "no published sha256: OpenAI publishes no sha256 for the ADM reference batches" in msg


def test_resolve_torchscript_needs_a_hash(tmp_path):
    f = tmp_path / "inception-2015-12-05.pt"
    f.write_bytes(b"pretend TorchScript")
    with pytest.raises(ChecksumError, match=f"expected {weights.MANIFEST[weights.INCEPTION_CLEANFID].sha256}"):
        weights.resolve(weights.INCEPTION_CLEANFID, f)  # the manifest's pin: not this file
    with pytest.raises(weights.UnpinnedWeightsError, match="refusing to load .* unchecked"):
        weights.resolve(weights.INCEPTION_CLEANFID, f, expected_sha256=None)
    assert weights.resolve(weights.INCEPTION_CLEANFID, f, expected_sha256=sha256_file(f)) == f
    with pytest.raises(ChecksumError):
        weights.resolve(weights.INCEPTION_CLEANFID, f, expected_sha256="0" * 64)
