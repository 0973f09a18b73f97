"""Gaussian feature statistics and the Fréchet distance between two of them (pure maths, no I/O).

FID, sFID, fd_embed and FD-DINOv2 are all this one formula on different features:
    d^2 = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))
ADM's evaluator and clean-fid take scipy `sqrtm` of the non-symmetric product sigma1 sigma2 (torch-fidelity: its
eigenvalues). We use the identity tr((s1 s2)^(1/2)) = tr((A s1 A)^(1/2)) with A = s2^(1/2): A s1 A is symmetric
PSD, so two symmetric eigendecompositions replace a complex Schur decomposition. Same number (tests: relative
difference < 1e-6 against clean-fid and torch-fidelity), several times faster at d = 2048, no imaginary parts and
no "singular product" retry (which is why ADM/clean-fid add 1e-6 to the diagonals; we never need to).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deco_bench.io import DecoBenchError


class FrechetError(DecoBenchError):
    """The statistics cannot be compared (shape mismatch, non-finite values, large imaginary part)."""


@dataclass(frozen=True)
class FeatureStats:
    """Mean and covariance of an (n, d) feature set, in float64 (so results do not depend on batch size)."""

    mu: np.ndarray  # (d,)
    sigma: np.ndarray  # (d, d)
    n: int  # number of feature vectors; 0 when read from a file that does not say

    @classmethod
    def from_features(cls, features: np.ndarray) -> "FeatureStats":
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise FrechetError(f"need (n >= 2, d) features for a covariance, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise FrechetError("features contain NaN or Inf")
        return cls(mu=x.mean(axis=0), sigma=np.cov(x, rowvar=False), n=x.shape[0])


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise FrechetError(f"shape mismatch: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}")
    for name, a in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(a).all():
            raise FrechetError(f"{name} contains NaN or Inf")
    return FrechetToReference(FeatureStats(mu2, sigma2, 0))(mu1, sigma1)


def stats_distance(a: FeatureStats, b: FeatureStats) -> float:
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


class FrechetToReference:
    """Fréchet distance of many statistics to one fixed reference (bootstrap): sqrt(sigma_ref) is computed once.

    tr((s1 s2)^(1/2)) = tr((A s1 A)^(1/2)) with A = s2^(1/2) symmetric, and A s1 A is symmetric PSD, so its trace
    root is a sum of square roots of `eigvalsh` eigenvalues: much cheaper than `sqrtm` of a non-symmetric product,
    and it runs on a GPU when `device` is one.
    """

    def __init__(self, ref: FeatureStats, device: str | torch.device = "cpu"):
        sigma = torch.as_tensor(ref.sigma, dtype=torch.float64, device=device)
        w, v = torch.linalg.eigh(sigma)
        self._sqrt_ref = (v * w.clamp_min(0).sqrt()) @ v.T
        self._mu_ref = torch.as_tensor(ref.mu, dtype=torch.float64, device=device)
        self._tr_ref = float(torch.trace(sigma))
        self.device = device

    def __call__(self, mu, sigma) -> float:
        mu = torch.as_tensor(mu, dtype=torch.float64, device=self.device)
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=self.device)
        m = self._sqrt_ref @ sigma @ self._sqrt_ref
        ev = torch.linalg.eigvalsh((m + m.T) / 2)
        diff = mu - self._mu_ref
        return float(diff @ diff + torch.trace(sigma) + self._tr_ref - 2.0 * ev.clamp_min(0).sqrt().sum())
