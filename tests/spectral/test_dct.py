"""Block DCT, YCbCr, JPEG tables and zig-zag order: closed forms and parity with the official trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deco_bench.spectral.dct import (JPEG_CHROMA_BASE, JPEG_LUMA_BASE, ZIGZAG_ORDER, block_dct2d, block_idct2d,
                                     dct_matrix, rgb_to_ycbcr, scaled_jpeg_table, zigzag)

GOLDENS = Path(__file__).resolve().parents[1] / "fixtures" / "diffusion" / "goldens.pt"


@pytest.fixture(scope="module")
def goldens():
    return torch.load(GOLDENS, weights_only=True)


def test_dct_matrix_is_orthonormal_and_matches_official(goldens):
    c = dct_matrix(8, dtype=torch.float64)
    torch.testing.assert_close(c @ c.T, torch.eye(8, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(c[0], torch.full((8,), 8 ** -0.5, dtype=torch.float64))  # DC row is flat
    torch.testing.assert_close(dct_matrix(8), goldens["dct_matrix"], atol=1e-6, rtol=0)


def test_block_dct_preserves_energy_and_inverts():
    x = torch.randn(2, 3, 16, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    coeffs = block_dct2d(x)
    assert coeffs.shape == (2, 3, 2, 3, 8, 8)
    torch.testing.assert_close(coeffs.pow(2).sum(), x.pow(2).sum())  # Parseval (orthonormal)
    torch.testing.assert_close(block_idct2d(coeffs), x)
    # block (1, 2) of channel 0 is the 2-D DCT of pixels rows 8:16, cols 16:24
    c = dct_matrix(8, dtype=torch.float64)
    torch.testing.assert_close(coeffs[0, 0, 1, 2], c @ x[0, 0, 8:16, 16:24] @ c.T)


def test_dct_of_constant_block_is_pure_dc():
    coeffs = block_dct2d(torch.full((1, 1, 8, 8), 2.0, dtype=torch.float64))[0, 0, 0, 0]
    assert coeffs[0, 0].item() == pytest.approx(16.0)  # 2 * 64 / 8
    assert coeffs.flatten()[1:].abs().max().item() < 1e-12


def test_block_dct_matches_official_with_reflect_padding(goldens):
    for tag in ("2x3x16x16", "2x3x20x12"):
        pred, _ = goldens[f"loss_in_{tag}"]
        torch.testing.assert_close(block_dct2d(rgb_to_ycbcr(pred)), goldens[f"dct_{tag}"], atol=1e-5, rtol=1e-5)


def test_ycbcr_closed_form():
    white = torch.ones(1, 3, 1, 1, dtype=torch.float64)
    red = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).view(1, 3, 1, 1)
    torch.testing.assert_close(rgb_to_ycbcr(white).flatten(), torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
                               atol=1e-6, rtol=0)  # grey has no chroma; no +128 offset
    torch.testing.assert_close(rgb_to_ycbcr(red).flatten(), torch.tensor([0.299, -0.168736, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError):
        rgb_to_ycbcr(torch.zeros(1, 4, 2, 2))


def test_jpeg_tables_ijg_scaling():
    assert torch.equal(scaled_jpeg_table(JPEG_LUMA_BASE, 50), JPEG_LUMA_BASE)  # scale 100 -> base table
    assert torch.equal(scaled_jpeg_table(JPEG_CHROMA_BASE, 100), torch.ones(8, 8))
    q10 = scaled_jpeg_table(JPEG_LUMA_BASE, 10)  # q < 50: scale 500, clamped to 255
    assert q10[0, 0].item() == 80 and q10[7, 7].item() == 255
    q85 = scaled_jpeg_table(JPEG_LUMA_BASE, 85)
    # docs/paper.md §5.1: the 12 entries (1-based row, col) where the code's table is one above paper Fig. 8
    code_values = {(2, 8): 17, (3, 7): 21, (4, 8): 19, (5, 6): 33, (6, 2): 11, (6, 3): 17, (6, 8): 28,
                   (8, 1): 22, (8, 2): 28, (8, 3): 29, (8, 5): 34, (8, 8): 30}
    for (r, c), v in code_values.items():
        assert q85[r - 1, c - 1].item() == v, (r, c)
    assert q85[0, 0].item() == 5  # floor((16 * 30 + 50) / 100)
    for bad in (0, 101, 85.5):
        with pytest.raises(ValueError):
            scaled_jpeg_table(JPEG_LUMA_BASE, bad)


def test_zigzag_order():
    standard = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
                13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52,
                45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]  # ITU-T T.81 Figure A.6
    assert list(ZIGZAG_ORDER) == standard
    pos = {flat: k for k, flat in enumerate(ZIGZAG_ORDER)}
    assert pos[0 * 8 + 1] == 1 and pos[1 * 8 + 0] == 2 and pos[7 * 8 + 7] == 63
    # docs/paper.md §4: Fig. 4's spikes sit at the zig-zag positions of first-row / first-column coefficients
    axis_positions = sorted(pos[f] for f in set(range(8)) | {8 * r for r in range(8)} if f)
    assert axis_positions == [1, 2, 3, 5, 6, 9, 10, 14, 15, 20, 21, 27, 28, 35]
    block = torch.arange(64.0).view(8, 8).expand(2, 3, 8, 8)
    assert torch.equal(zigzag(block)[1, 2], torch.tensor(standard, dtype=torch.float32))
    with pytest.raises(ValueError):
        zigzag(torch.zeros(4, 4))
