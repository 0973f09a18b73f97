"""FD-DINOv2: the Fréchet distance in the feature space of DINOv2 (Stein et al. 2023, "Exposing flaws of generative
model evaluation metrics and their unfair treatment of diffusion models"), an optional extra to the ADM metrics.

Feature: the class token after DINOv2's final LayerNorm (`x_norm_clstoken`, which is what the torch.hub model's
forward() returns: its head is the identity), for 224 x 224 inputs. Stein et al. use ViT-L/14 (dgm-eval's default
arch 'vitl14'); ViT-B/14 (the REPA encoder) is accepted too, and any DINOv2 checkpoint without registers or SwiGLU:
the architecture is read off the state dict (head dim 64 for every released size), which also lets tests use a tiny ViT.

Preprocessing, per image: uint8 -> [0, 1] -> bicubic resize to 224 -> ImageNet mean/std. dgm-eval resizes the PIL
image with torchvision `Resize((224, 224), BICUBIC)`, i.e. PIL's bicubic filter, which widens its kernel when
shrinking (antialias). We resize the tensor with `antialias=True`, torch's PIL-like filter (for 256 -> 224 the
two agree closely; when enlarging, antialias changes nothing), and clamp to [0, 1] as PIL's uint8 output is clamped.
We do not re-quantise to uint8 after resizing (PIL does): a difference well below the metric's sampling noise.

Weights come from the official facebookresearch files (`dinov2_vit{b,l}14_pretrain.pth`) on local disk, resolved
and checksummed through `weights.resolve` (a missing file raises MissingFileError naming the path and URL; nothing
is downloaded). The network runs in float64 by default, like our Inception, so features do not depend on batch size.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from deco_bench.diffusion.encoders import DINOV2_PATCH, IMAGENET_MEAN, IMAGENET_STD, convert_dinov2_state_dict
from deco_bench.io import safe_torch_load, sha256_file
from deco_bench.metrics import weights

DINOV2_INPUT_SIZE = 224  # Stein et al. / dgm-eval: Resize((224, 224))
DINOV2_HEAD_DIM = 64  # every released DINOv2 ViT (S/B/L/g) uses 64-dim heads: num_heads = embed_dim / 64
ARCHS = {"vitl14": weights.DINOV2_VITL14, "vitb14": weights.DINOV2_VITB14}  # -> manifest entry (file, URL)
DEFAULT_ARCH = "vitl14"  # Stein et al.'s choice


def build_vit(state: dict[str, torch.Tensor], image_size: int = DINOV2_INPUT_SIZE) -> nn.Module:
    """timm ViT with the DINOv2 layout (LayerScale, eps 1e-6 LayerNorm) sized from an official-format state dict."""
    from timm.models.vision_transformer import VisionTransformer

    if any(".mlp.w12." in k for k in state):
        raise ValueError("DINOv2 checkpoint with a SwiGLU MLP (ViT-g/14) is not supported; use ViT-L/14 or ViT-B/14")
    if "register_tokens" in state:
        raise ValueError("DINOv2 checkpoint with register tokens is not supported (FD-DINOv2 uses the plain model)")
    if "patch_embed.proj.weight" not in state or "blocks.0.mlp.fc1.weight" not in state:
        raise ValueError("not a DINOv2 state dict in the facebookresearch key format (no patch_embed / blocks.0)")
    embed_dim, _, patch, _ = state["patch_embed.proj.weight"].shape
    if patch != DINOV2_PATCH or embed_dim % DINOV2_HEAD_DIM:
        raise ValueError(f"unexpected DINOv2 patch size {patch} / width {embed_dim}")
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    hidden = state["blocks.0.mlp.fc1.weight"].shape[0]
    with torch.device("meta"):  # no random init: load_state_dict(assign=True) overwrites every tensor
        return VisionTransformer(img_size=image_size, patch_size=patch, embed_dim=embed_dim, depth=depth,
                                 num_heads=embed_dim // DINOV2_HEAD_DIM, mlp_ratio=hidden / embed_dim,
                                 init_values=1.0, num_classes=0)


def load_dinov2(path: str | os.PathLike | None = None, *, arch: str = DEFAULT_ARCH, sha256: str | None = "manifest",
                cache_dir: str | os.PathLike | None = None) -> tuple[nn.Module, str]:
    """(timm ViT in eval mode, weights sha256) from a local official checkpoint; see weights.resolve for lookup."""
    if arch not in ARCHS:
        raise ValueError(f"unknown DINOv2 arch {arch!r}; choose one of {sorted(ARCHS)}")
    resolved = weights.resolve(ARCHS[arch], path, cache_dir_override=cache_dir, expected_sha256=sha256)
    state = safe_torch_load(resolved)
    vit = build_vit(state)
    # Same key names as timm; pos_embed (37 x 37, for 518 px) resampled once to the 16 x 16 grid of 224 px exactly as
    # DINOv2's interpolate_pos_encoding does at every forward (see encoders.convert_dinov2_state_dict).
    vit.load_state_dict(convert_dinov2_state_dict(state, vit.patch_embed.grid_size), strict=True, assign=True)
    return vit.eval().requires_grad_(False), sha256_file(resolved)


def preprocess(images: np.ndarray, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu"
               ) -> torch.Tensor:
    """uint8 (b, H, W, 3) -> normalised (b, 3, 224, 224) network input (see the module docstring)."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True)).to(device).permute(0, 3, 1, 2)
    x = x.to(dtype) / 255.0
    if tuple(x.shape[-2:]) != (DINOV2_INPUT_SIZE, DINOV2_INPUT_SIZE):
        x = F.interpolate(x, size=(DINOV2_INPUT_SIZE, DINOV2_INPUT_SIZE), mode="bicubic", align_corners=False,
                          antialias=True).clamp(0.0, 1.0)
    mean = torch.tensor(IMAGENET_MEAN, dtype=dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class DinoV2Features:
    """Extractor (features.py protocol): uint8 (b, H, W, 3) -> {'pool': (b, D) float64 normed CLS tokens}."""

    def __init__(self, vit: nn.Module, weights_sha256: str, *, device: str | torch.device = "cpu",
                 internal_dtype: str = "float64"):
        self.dtype = {"float32": torch.float32, "float64": torch.float64}[internal_dtype]
        self.device = torch.device(device)
        self.vit = vit.to(device=self.device, dtype=self.dtype).eval()
        self.identity = {
            "extractor": "DINOv2 (facebookresearch weights, timm ViT)", "weights_sha256": weights_sha256,
            "layers": "x_norm_clstoken", "embed_dim": int(vit.embed_dim), "depth": len(vit.blocks),
            "input_size": DINOV2_INPUT_SIZE, "resize": "bicubic, antialias, clamp [0, 1]",
            "internal_dtype": internal_dtype,
        }

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        tokens = self.vit.forward_features(preprocess(images, self.dtype, self.device))  # (b, 1 + N, D), final norm
        return {"pool": tokens[:, 0].to(torch.float64).cpu().numpy()}  # class token = x_norm_clstoken


def load_extractor(path: str | os.PathLike | None = None, *, arch: str = DEFAULT_ARCH,
                   sha256: str | None = "manifest", device: str | torch.device | None = None,
                   internal_dtype: str = "float64", cache_dir: str | os.PathLike | None = None) -> DinoV2Features:
    vit, digest = load_dinov2(path, arch=arch, sha256=sha256, cache_dir=cache_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    features = DinoV2Features(vit, digest, device=device, internal_dtype=internal_dtype)
    features.identity["arch"] = arch
    return features
