"""8x8 block DCT, RGB->YCbCr and JPEG quantisation tables.

One module for both users: the FreqFM loss (paper Eq. 6-7; docs/paper.md §5.1) and the DCT energy analysis of Fig. 4
(docs/paper.md §4). Keeping them on the same transform means the analysis measures exactly what the loss weights.

Conventions (parity with the official trainer `training_repa_DeCo.py`):
- DCT-II, orthonormal: D = C X C^T per 8x8 block, C[k, n] = a_k cos(pi (2n+1) k / 16), a_0 = sqrt(1/8),
  a_k = sqrt(2/8). Coefficient [u, v]: u = vertical frequency (row), v = horizontal (column).
- Images whose side is not a multiple of 8 are reflect-padded at the bottom/right, as the official code does.
- YCbCr without the +128 offset (the offset is constant, so it cancels in a difference of two images).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BLOCK = 8

# ITU-T T.81 Annex K, Tables K.1 (luminance) and K.2 (chrominance): the IJG base tables at quality 50.
JPEG_LUMA_BASE = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
], dtype=torch.float32)

JPEG_CHROMA_BASE = torch.full((8, 8), 99.0)
JPEG_CHROMA_BASE[:4, :4] = torch.tensor([
    [17, 18, 24, 47],
    [18, 21, 26, 66],
    [24, 26, 56, 99],
    [47, 66, 99, 99],
], dtype=torch.float32)

# JFIF / BT.601 full-range RGB -> YCbCr matrix, rows Y, Cb, Cr (no offset; parity with the official trainer).
YCBCR_MATRIX = torch.tensor([
    [0.299, 0.587, 0.114],
    [-0.168736, -0.331264, 0.5],
    [0.5, -0.418688, -0.081312],
], dtype=torch.float32)


def dct_matrix(n: int = BLOCK, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
               ) -> torch.Tensor:
    """Orthonormal DCT-II matrix C (n, n): row k is the k-th cosine basis vector, so C @ C.T = I."""
    if n < 1:
        raise ValueError(f"DCT size must be >= 1, got {n}")
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    c = torch.cos(math.pi * (2 * i + 1) * k / (2 * n))
    scale = torch.full((n, 1), math.sqrt(2.0 / n), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / n)
    return (scale * c).to(dtype=dtype, device=device)


def _check_image(x: torch.Tensor, name: str = "x") -> None:
    if x.dim() != 4:
        raise ValueError(f"{name} must be (B, C, H, W), got shape {tuple(x.shape)}")


def block_dct2d(x: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, ceil(H/block), ceil(W/block), block, block) orthonormal 2-D DCT of each block.

    Reflect padding at the bottom/right when H or W is not divisible (parity with the official `_dct`).
    """
    _check_image(x)
    pad_h, pad_w = (-x.shape[2]) % block, (-x.shape[3]) % block
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    b, c, h, w = x.shape
    blocks = x.reshape(b, c, h // block, block, w // block, block).transpose(3, 4)  # (B,C,Bh,Bw,bs,bs)
    cmat = dct_matrix(block, dtype=x.dtype, device=x.device)
    return cmat @ blocks @ cmat.T


def block_idct2d(coeffs: torch.Tensor) -> torch.Tensor:
    """Inverse of `block_dct2d` for unpadded input: (B, C, Bh, Bw, bs, bs) -> (B, C, Bh*bs, Bw*bs)."""
    if coeffs.dim() != 6 or coeffs.shape[-1] != coeffs.shape[-2]:
        raise ValueError(f"coeffs must be (B, C, Bh, Bw, bs, bs), got shape {tuple(coeffs.shape)}")
    b, c, bh, bw, bs, _ = coeffs.shape
    cmat = dct_matrix(bs, dtype=coeffs.dtype, device=coeffs.device)
    blocks = cmat.T @ coeffs @ cmat
    return blocks.transpose(3, 4).reshape(b, c, bh * bs, bw * bs)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB -> YCbCr with the JFIF coefficients and no offset (official `_rgb2ycbcr`)."""
    _check_image(x)
    if x.shape[1] != 3:
        raise ValueError(f"rgb_to_ycbcr needs 3 channels, got {x.shape[1]}")
    m = YCBCR_MATRIX.to(dtype=x.dtype, device=x.device)
    return torch.einsum("oc,bchw->bohw", m, x)


def scaled_jpeg_table(base: torch.Tensor, quality: int) -> torch.Tensor:
    """IJG quality scaling of a base table (libjpeg `jpeg_quality_scaling`), float32.

    q < 50: s = 5000/q, else s = 200 - 2q; Q = floor((base*s + 50)/100) clamped to [1, 255]. This is what the
    official code computes; paper Fig. 8's q=85 luminance table is one lower in 12 entries (docs/paper.md §5.1).
    """
    if isinstance(quality, bool) or not float(quality).is_integer():
        raise ValueError(f"JPEG quality must be an integer in [1, 100], got {quality!r}")
    q = int(quality)
    if not 1 <= q <= 100:
        raise ValueError(f"JPEG quality must be in [1, 100], got {q}")
    scale = 5000.0 / q if q < 50 else 200.0 - 2.0 * q
    return torch.floor((base.to(torch.float32) * scale + 50.0) / 100.0).clamp(1.0, 255.0)


def _zigzag_order(n: int = BLOCK) -> list[int]:
    """Flat indices (row*n + col) in JPEG zig-zag order: walk the anti-diagonals, alternating direction."""
    order: list[int] = []
    for s in range(2 * n - 1):
        diag = [(r, s - r) for r in range(n) if 0 <= s - r < n]  # row increasing = walking down-left
        if s % 2 == 0:
            diag.reverse()  # even diagonals run up-right (start at the bottom-left end)
        order.extend(r * n + c for r, c in diag)
    return order


# ZIGZAG_ORDER[k] = flat index (row*8 + col) of the k-th coefficient in zig-zag order; k = 0 is DC.
ZIGZAG_ORDER: tuple[int, ...] = tuple(_zigzag_order(BLOCK))


def zigzag(coeffs: torch.Tensor) -> torch.Tensor:
    """Reorder the last two (8, 8) dims into 64 values in zig-zag order (index 0 = DC)."""
    if coeffs.dim() < 2 or tuple(coeffs.shape[-2:]) != (BLOCK, BLOCK):
        raise ValueError(f"zigzag needs trailing dims (8, 8), got shape {tuple(coeffs.shape)}")
    index = torch.tensor(ZIGZAG_ORDER, device=coeffs.device)
    return coeffs.flatten(-2).index_select(-1, index)
