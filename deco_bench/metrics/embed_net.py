"""The embedded-scale evaluation network: a small CNN classifier trained on the embedded dataset.

Inception weights cannot be used offline, so the embedded pipeline measures FD/IS/precision/recall/KID in the
feature space of this network instead (reported as fd_embed, is_embed, ...; never called FID). It is a different
network from any REPA encoder, trained only on the embedded training images and labels, deterministic given the
seed (CPU; the same seed gives the same weights).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from deco_bench.io import atomic_torch_save, safe_torch_load, sha256_file
from deco_bench.metrics.adm_npz import check_images


@dataclass(frozen=True)
class EmbedNetConfig:
    num_classes: int
    image_size: int = 32  # inputs of another size are resized (bilinear) to this
    width: int = 32  # channels of the first stage; stages use width, 2*width, 4*width
    feature_dim: int = 128  # size of the pooled feature used for FD/PR/KID


def _block(c_in: int, c_out: int) -> nn.Sequential:
    # BatchNorm, not GroupNorm: per-sample normalisation would make the features blind to global colour and
    # brightness shifts, exactly what an evaluation network must see
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.SiLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.SiLU())


class EmbedNet(nn.Module):
    def __init__(self, cfg: EmbedNetConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.stages = nn.ModuleList([_block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w)])
        self.proj = nn.Linear(4 * w, cfg.feature_dim)
        self.head = nn.Linear(cfg.feature_dim, cfg.num_classes)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (b, 3, s, s) in [-1, 1]
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else F.avg_pool2d(x, 2))  # s -> s/2 -> s/4
        pool = F.silu(self.proj(x.mean(dim=(2, 3))))  # (b, feature_dim)
        return pool, self.head(pool)  # features, (b, num_classes) logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[1]


def _to_input(images: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


def train_feature_net(images: np.ndarray, labels: np.ndarray, *, epochs: int = 8, seed: int = 0,
                      batch_size: int = 64, lr: float = 2e-3, width: int = 32,
                      feature_dim: int = 128) -> tuple[EmbedNet, dict]:
    """Train the classifier on uint8 (N, H, W, 3) images with int labels; returns (model in eval mode, info)."""

    check_images(images, "evaluation-network training images")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (images.shape[0],) or labels.min() < 0:
        raise ValueError(f"labels must be (N,) non-negative ints, got shape {labels.shape}")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # parameter initialisation
    cfg = EmbedNetConfig(num_classes=int(labels.max()) + 1, image_size=images.shape[1], width=width,
                         feature_dim=feature_dim)
    model = EmbedNet(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    x_all, y_all = _to_input(images, cfg.image_size), torch.from_numpy(labels)
    losses = []
    model.train()
    for _ in range(epochs):
        order, total = torch.randperm(len(x_all), generator=gen), 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            x = x_all[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5  # horizontal flips: the only augmentation
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = F.cross_entropy(model(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(order))
    _recalibrate_batchnorm(model, x_all)
    model.eval()
    with torch.no_grad():
        acc = float((_logits(model, x_all).argmax(1) == y_all).float().mean())
    info = {"epochs": epochs, "seed": seed, "loss_per_epoch": losses, "train_accuracy": acc,
            "num_params": sum(p.numel() for p in model.parameters()), "config": asdict(cfg)}
    return model, info


@torch.no_grad()
def _recalibrate_batchnorm(model: EmbedNet, x: torch.Tensor, chunk: int = 512) -> None:
    """Set BatchNorm running statistics to the exact average over the training images (few steps of momentum
    averaging leave them far from the final weights' statistics, and eval-mode features would suffer)."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the chunks
    model.train()
    for i in range(0, len(x), chunk):
        model(x[i:i + chunk])
    for bn in bns:
        bn.momentum = 0.1


def _logits(model: EmbedNet, x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    return torch.cat([model(x[i:i + chunk]) for i in range(0, len(x), chunk)])


@torch.no_grad()
def extract(model: EmbedNet, images: np.ndarray) -> dict[str, np.ndarray]:
    """uint8 (b, H, W, 3) -> {'pool': (b, feature_dim), 'logits': (b, num_classes)} as float32."""
    model.eval()
    pool, logits = model.features(_to_input(images, model.cfg.image_size))
    return {"pool": pool.numpy(), "logits": logits.numpy()}


class EmbedFeatures:
    """Extractor adapter (see features.py) around a trained EmbedNet."""

    def __init__(self, model: EmbedNet, weights_sha256: str):
        self.model = model
        self.identity = {"extractor": "deco-bench EmbedNet", "weights_sha256": weights_sha256,
                         "layers": "pool; logits", "config": asdict(model.cfg)}

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return extract(self.model, images)


def save_feature_net(model: EmbedNet, path: str | os.PathLike, info: dict | None = None) -> None:
    atomic_torch_save({"config": asdict(model.cfg), "state_dict": model.state_dict(), "info": info or {}}, path)


def load_feature_net(path: str | os.PathLike) -> EmbedNet:
    blob = safe_torch_load(path)
    model = EmbedNet(EmbedNetConfig(**blob["config"]))
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def load_feature_extractor(path: str | os.PathLike) -> EmbedFeatures:
    return EmbedFeatures(load_feature_net(path), sha256_file(path))
