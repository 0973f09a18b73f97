"""Frozen REPA target encoders: image in [0, 1] (B, 3, H, W) -> patch tokens (B, N, D).

- `DinoV2Encoder`: DINOv2 ViT-B/14, the official REPA target (docs/paper.md §5.1), rebuilt with timm from the
  facebookresearch checkpoint file on local disk (never downloaded here).
- `SmallEncoder`: a tiny patch encoder for CPU-scale runs. With its default seeded initialisation it is a
  random-feature stand-in (a fixed random projection of each patch), not a pretrained representation; a trained
  state dict can be loaded instead with `SmallEncoder.from_file`.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from deco_bench.io import ChecksumError, MissingFileError, safe_torch_load, sha256_file

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DINOV2_B14_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth"
DINOV2_PATCH = 14
DINOV2_CKPT_GRID = 37  # the released checkpoint's pos_embed is for 518 / 14 = 37 x 37 patches


def _imagenet_normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class FrozenEncoder(nn.Module):
    """Base: parameters never train and the module stays in eval mode whatever its parent does."""

    out_dim: int

    def freeze(self) -> "FrozenEncoder":
        self.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> "FrozenEncoder":
        return super().train(False)


class DinoV2Encoder(FrozenEncoder):
    """DINOv2 ViT-B/14 as used by the official REPA trainer (`src/models/encoder.py`).

    Input: raw image in [0, 1] at `image_size`; ImageNet mean/std normalisation, bicubic resize to 14 * H / 16
    (224 for 256), so the token grid equals a 16-pixel DiT patch grid: N = (H / 16)^2. Output: `x_norm_patchtokens`
    (final LayerNorm applied, class token dropped), D = 768.
    """

    out_dim = 768

    def __init__(self, vit: nn.Module, image_size: int, base_patch_size: int = 16):
        super().__init__()
        self.vit = vit
        self.image_size = image_size
        self.base_patch_size = base_patch_size
        self.freeze()

    @staticmethod
    def build_vit(image_size: int, base_patch_size: int = 16, device: torch.device | str | None = None) -> nn.Module:
        """The timm ViT-B/14 (DINOv2 layout, LayerScale) for inputs of 14 * image_size / 16 pixels, untrained."""
        import timm

        vit_size = _dinov2_input_size(image_size, base_patch_size)
        with torch.device(device) if device is not None else contextlib.nullcontext():
            return timm.create_model("vit_base_patch14_dinov2", pretrained=False, img_size=vit_size, num_classes=0,
                                     init_values=1.0)

    @classmethod
    def from_weights(cls, path: str | Path, sha256: str | None = None, image_size: int = 256,
                     base_patch_size: int = 16) -> "DinoV2Encoder":
        """Load the facebookresearch `dinov2_vitb14_pretrain.pth` state dict from a local file."""
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(
                f"{path}: DINOv2 ViT-B/14 weights not found (expected sha256: {sha256 or 'not pinned'}). "
                f"Download {DINOV2_B14_URL} on a machine with network access and place it at this path.")
        if sha256 is not None:
            actual = sha256_file(path)
            if actual != sha256.lower():
                raise ChecksumError(f"{path}: sha256 {actual} does not match the expected {sha256.lower()}; "
                                    f"re-download {DINOV2_B14_URL}")
        state = safe_torch_load(path)
        vit = cls.build_vit(image_size, base_patch_size, device="meta")  # no random init: the file overwrites all
        vit.load_state_dict(convert_dinov2_state_dict(state, vit.patch_embed.grid_size), strict=True, assign=True)
        return cls(vit, image_size, base_patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or tuple(images.shape[1:]) != (3, self.image_size, self.image_size):
            raise ValueError(f"DinoV2Encoder built for (B, 3, {self.image_size}, {self.image_size}) images in [0, 1], "
                             f"got {tuple(images.shape)}")
        size = _dinov2_input_size(self.image_size, self.base_patch_size)
        x = F.interpolate(_imagenet_normalise(images), size=(size, size), mode="bicubic")  # official: no antialias
        tokens = self.vit.forward_features(x)                                          # (B, 1 + N, 768), normed
        return tokens[:, self.vit.num_prefix_tokens:]


def _dinov2_input_size(image_size: int, base_patch_size: int) -> int:
    if image_size % base_patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of the DiT patch size {base_patch_size}")
    return int(DINOV2_PATCH * image_size / base_patch_size)


def convert_dinov2_state_dict(state: dict[str, torch.Tensor], grid: tuple[int, int]) -> dict[str, torch.Tensor]:
    """facebookresearch DINOv2 keys -> timm `vit_base_patch14_dinov2` keys, pos_embed resampled to `grid`.

    The key names already match timm for ViT-B/14 (only `mask_token` is dropped). The position embedding is
    resampled once, the way DINOv2's `interpolate_pos_encoding` does it at every forward (bicubic, no antialias,
    scale factor (n + 0.1) / M), so the tokens equal those of the torch.hub model used by the official code.
    """
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items() if k != "mask_token"}
    if "pos_embed" not in state:
        raise ValueError("not a DINOv2 state dict: no 'pos_embed' key")
    pos = state["pos_embed"].float()
    m = math.isqrt(pos.shape[1] - 1)
    if m * m != pos.shape[1] - 1:
        raise ValueError(f"DINOv2 pos_embed has {pos.shape[1] - 1} patch positions, not a square grid")
    if (m, m) != tuple(grid):
        cls_pos, patch_pos = pos[:, :1], pos[:, 1:]
        dim = pos.shape[-1]
        scale = ((grid[0] + 0.1) / m, (grid[1] + 0.1) / m)
        patch_pos = F.interpolate(patch_pos.reshape(1, m, m, dim).permute(0, 3, 1, 2), scale_factor=scale,
                                  mode="bicubic", antialias=False)
        if tuple(patch_pos.shape[-2:]) != tuple(grid):
            raise ValueError(f"pos_embed resampling gave {tuple(patch_pos.shape[-2:])}, expected {tuple(grid)}")
        state["pos_embed"] = torch.cat([cls_pos, patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1)
    return state


class SmallEncoder(FrozenEncoder):
    """Tiny frozen encoder for CPU-scale REPA: patchify (conv p x p, stride p) -> GELU -> Linear -> LayerNorm.

    Tokens (B, (H/p)^2, dim) line up with a DiT of patch size p. Weights come from `seed` alone (Gaussian,
    1/sqrt(fan_in)), so two processes build the same encoder; this makes it a random-feature stand-in for DINOv2,
    not a pretrained model. `from_file` loads trained weights instead.
    """

    def __init__(self, patch_size: int = 16, dim: int = 64, seed: int = 0, in_chans: int = 3):
        super().__init__()
        if patch_size < 1 or dim < 1:
            raise ValueError(f"patch_size and dim must be >= 1, got {patch_size}, {dim}")
        self.patch_size, self.out_dim = patch_size, dim
        self.patch = nn.Conv2d(in_chans, dim, patch_size, stride=patch_size)
        self.mix = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        g = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for p in (self.patch.weight, self.mix.weight):
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
            self.patch.bias.zero_()
            self.mix.bias.zero_()
        self.freeze()

    @classmethod
    def from_file(cls, path: str | Path, sha256: str | None = None) -> "SmallEncoder":
        """Build from a saved state dict; patch size and dim are read from the weight shapes."""
        path = Path(path)
        if sha256 is not None and path.is_file() and sha256_file(path) != sha256.lower():
            raise ChecksumError(f"{path}: sha256 does not match the expected {sha256.lower()}")
        state = safe_torch_load(path)
        if "patch.weight" not in state:
            raise ValueError(f"{path}: not a SmallEncoder state dict (no 'patch.weight')")
        dim, in_chans, p, _ = state["patch.weight"].shape
        enc = cls(patch_size=p, dim=dim, in_chans=in_chans)
        enc.load_state_dict(state, strict=True)
        return enc

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[-1] % self.patch_size or images.shape[-2] % self.patch_size:
            raise ValueError(f"SmallEncoder needs (B, C, H, W) with H, W multiples of {self.patch_size}, "
                             f"got {tuple(images.shape)}")
        h = self.patch(_imagenet_normalise(images) if images.shape[1] == 3 else images)  # (B, D, H/p, W/p)
        h = F.gelu(h.flatten(2).transpose(1, 2))                                       # (B, N, D)
        return self.norm(self.mix(h))


ENCODERS = ("dinov2-b14", "small", "none")


def build_encoder(name: str, *, weights_path: str | Path | None = None, sha256: str | None = None,
                  image_size: int = 256, patch_size: int = 16, dim: int = 64, seed: int = 0
                  ) -> FrozenEncoder | None:
    """'dinov2-b14' (needs weights_path), 'small' (SmallEncoder; weights_path optional) or 'none' (no REPA)."""
    if name == "dinov2-b14":
        if weights_path is None:
            raise ValueError("encoder 'dinov2-b14' needs weights_path (the local dinov2_vitb14_pretrain.pth)")
        return DinoV2Encoder.from_weights(weights_path, sha256=sha256, image_size=image_size,
                                          base_patch_size=patch_size)
    if name == "small":
        if weights_path is not None:
            return SmallEncoder.from_file(weights_path, sha256=sha256)
        return SmallEncoder(patch_size=patch_size, dim=dim, seed=seed)
    if name == "none":
        return None
    raise ValueError(f"unknown REPA encoder {name!r}; choose one of {ENCODERS}")
