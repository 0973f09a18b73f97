"""REPA encoders: DINOv2 loading (parity with the facebookresearch code on synthetic weights), file errors, and the
seeded small encoder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deco_bench.diffusion.encoders import DINOV2_B14_URL, DinoV2Encoder, SmallEncoder, build_encoder
from deco_bench.io import ChecksumError, MissingFileError, sha256_file

DINOV2_GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "diffusion" / "dinov2_tokens.pt"


@pytest.fixture(scope="module")
def dinov2_golden():
    return torch.load(DINOV2_GOLDEN, weights_only=True)


def test_dinov2_matches_hub_model_on_synthetic_weights(dinov2_golden, ref, tmp_path):
    # Random weights in the official key format (incl. mask_token and the 37x37 pos_embed of the released file);
    # the golden tokens come from facebookresearch/dinov2's own model code (make_goldens.py --dinov2).
    state = ref.synthetic_dinov2_state_dict([(k, tuple(s)) for k, s in dinov2_golden["keys_shapes"]], seed=0)
    assert state["pos_embed"].shape == (1, 1 + 37 * 37, 768) and "mask_token" in state
    path = tmp_path / "dinov2_vitb14_pretrain.pth"
    torch.save(state, path)
    del state
    encoder = DinoV2Encoder.from_weights(path, image_size=32)
    with torch.no_grad():
        tokens = encoder(dinov2_golden["images"])
    assert tokens.shape == (2, 4, 768)  # (32 / 16)^2 tokens: one per DiT patch
    torch.testing.assert_close(tokens, dinov2_golden["tokens"], atol=2e-4, rtol=1e-4)
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training  # frozen encoder stays in eval mode
    with pytest.raises(ValueError):
        encoder(torch.rand(1, 3, 64, 64))


def test_dinov2_missing_file_names_path_and_source(tmp_path):
    missing = tmp_path / "nowhere" / "dinov2_vitb14_pretrain.pth"
    with pytest.raises(MissingFileError) as err:
        DinoV2Encoder.from_weights(missing, sha256="ab" * 32)
    assert str(missing) in str(err.value) and DINOV2_B14_URL in str(err.value) and "ab" * 32 in str(err.value)
    with pytest.raises(MissingFileError):
        build_encoder("dinov2-b14", weights_path=missing)


def test_dinov2_wrong_checksum(tmp_path):
    path = tmp_path / "dinov2_vitb14_pretrain.pth"
    path.write_bytes(b"not the weights")
    with pytest.raises(ChecksumError):
        DinoV2Encoder.from_weights(path, sha256="0" * 64)


def test_small_encoder_is_seeded_and_reloadable(tmp_path):
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a, b, c = SmallEncoder(8, 16, seed=1), SmallEncoder(8, 16, seed=1), SmallEncoder(8, 16, seed=2)
    ta = a(images)
    assert ta.shape == (2, 16, 16)  # (32 / 8)^2 tokens of dim 16
    assert torch.equal(ta, b(images)) and not torch.allclose(ta, c(images))
    torch.testing.assert_close(ta.mean(-1), torch.zeros(2, 16), atol=1e-5, rtol=0)  # final LayerNorm
    assert not any(p.requires_grad for p in a.parameters())
    path = tmp_path / "small.pt"
    torch.save(c.state_dict(), path)
    loaded = build_encoder("small", weights_path=path, sha256=sha256_file(path))
    assert torch.equal(loaded(images), c(images))
    with pytest.raises(ChecksumError):
        SmallEncoder.from_file(path, sha256="f" * 64)
    with pytest.raises(MissingFileError):
        SmallEncoder.from_file(tmp_path / "absent.pt")
    with pytest.raises(ValueError):
        a(torch.rand(1, 3, 30, 30))


def test_build_encoder_names():
    assert build_encoder("none") is None
    assert torch.equal(build_encoder("small", patch_size=4, dim=8, seed=3).patch.weight,
                       SmallEncoder(4, 8, seed=3).patch.weight)
    with pytest.raises(ValueError):
        build_encoder("dinov2-b14")  # needs weights_path
    with pytest.raises(ValueError):
        build_encoder("clip")
