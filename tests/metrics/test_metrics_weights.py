"""Weights resolution: offline first, checksummed, named errors, download only when asked."""

from __future__ import annotations

import urllib.request

import pytest
import torch

from deco_bench.io import ChecksumError, CorruptFileError, MissingFileError, sha256_file
from deco_bench.metrics import weights


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_missing_file_names_file_checksum_and_source(tmp_path):
    entry = weights.MANIFEST[weights.INCEPTION]
    with pytest.raises(MissingFileError) as e:
        weights.resolve(weights.INCEPTION, cache_dir_override=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / entry.filename) in msg and entry.sha256 in msg and entry.url in msg


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.ENV_CACHE_DIR, str(tmp_path))
    with pytest.raises(MissingFileError, match=str(tmp_path)):
        weights.resolve(weights.INCEPTION)


def test_checksum_mismatch_is_refused(tmp_path):
    f = tmp_path / weights.MANIFEST[weights.INCEPTION].filename
    torch.save({"w": torch.zeros(3)}, f)
    with pytest.raises(ChecksumError) as e:
        weights.resolve(weights.INCEPTION, cache_dir_override=tmp_path)
    assert sha256_file(f) in str(e.value) and weights.MANIFEST[weights.INCEPTION].sha256 in str(e.value)


def test_explicit_path_and_expected_hash(tmp_path):
    f = tmp_path / "mine.pth"
    torch.save({"w": torch.ones(2)}, f)
    good = sha256_file(f)
    assert weights.resolve(weights.INCEPTION, f, expected_sha256=good) == f
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one corrupted byte
    f.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=good):
        weights.resolve(weights.INCEPTION, f, expected_sha256=good)


def test_manifest_size_is_checked_before_hashing(tmp_path):
    f = tmp_path / "dino.pth"
    f.write_bytes(b"x" * 10)
    with pytest.raises(ChecksumError, match="bytes"):
        weights.resolve(weights.DINOV2_VITL14, f)


def test_corrupt_weights_file_gives_named_error_before_torch_fidelity_reads_it(tmp_path):
    from deco_bench.metrics.inception import InceptionFeatures

    f = tmp_path / "cut.pth"
    torch.save({"w": torch.zeros(1000)}, f)
    f.write_bytes(f.read_bytes()[:200])
    with pytest.raises(CorruptFileError, match="cut.pth"):
        InceptionFeatures(f)
