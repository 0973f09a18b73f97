"""Improved precision and recall (Kynkäänniemi et al. 2019) with ADM's manifold estimator (pure maths).

ADM evaluator.py ManifoldEstimator semantics: each feature set's manifold is the union of balls around its points,
the radius of a point being its SQUARED distance to its k-th nearest neighbour (k = 3, the point itself counting as
neighbour 0); precision = fraction of sample features inside some reference ball, recall = fraction of reference
features inside some sample ball; "inside" is `distance <= radius`.
Deviation: ADM first computes distances in float16 (falling back to float32 on overflow); we use float64, so a
point lying on a ball's boundary to within float16 rounding may be classified differently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
import torch

ADM_K = 3  # ADM evaluator.py nhood_sizes=(3,)
_ROWS = 1024  # rows of the distance matrix held at once (memory: _ROWS x n float64)


def _sq_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # |a|^2 - 2ab + |b|^2, clamped at 0 like ADM's _batch_pairwise_distances
    return ((a * a).sum(1, keepdim=True) - 2.0 * a @ b.T + (b * b).sum(1)[None, :]).clamp_min_(0.0)


def manifold_radii(features: np.ndarray, k: int = ADM_K) -> np.ndarray:
    """(n,) squared distance from each point to its k-th nearest neighbour within the same set."""
    x = torch.as_tensor(np.asarray(features), dtype=torch.float64)
    if x.shape[0] <= k:
        raise ValueError(f"need more than k={k} features to estimate a manifold, got {x.shape[0]}")
    radii = [torch.kthvalue(_sq_dists(x[i:i + _ROWS], x), k + 1, dim=1).values for i in range(0, len(x), _ROWS)]
    return torch.cat(radii).numpy()


def _inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> scipy.sparse.csr_matrix:
    """Sparse (len(points), len(centres)) boolean matrix: point i lies inside the ball of centre j."""
    blocks = []
    for i in range(0, len(points), _ROWS):
        blocks.append(scipy.sparse.csr_matrix((_sq_dists(points[i:i + _ROWS], centres) <= radii[None, :]).numpy()))
    return scipy.sparse.vstack(blocks, format="csr")


@dataclass(frozen=True)
class ManifoldMembership:
    """Who is inside whom; enough to recompute precision/recall on a resampled set of samples (bootstrap)."""

    sample_in_ref: np.ndarray  # (n_samples,) bool: sample i lies in the reference manifold
    ref_in_sample_balls: scipy.sparse.csr_matrix  # (n_ref, n_samples) bool: ref j lies in the ball of sample i

    def precision(self, idx: np.ndarray | None = None) -> float:
        hits = self.sample_in_ref if idx is None else self.sample_in_ref[idx]
        return float(np.mean(hits))

    def recall(self, idx: np.ndarray | None = None) -> float:
        """Recall when the sample set is `idx` (with repeats); the balls keep their full-set radii."""
        n = self.ref_in_sample_balls.shape[1]
        present = np.ones(n) if idx is None else (np.bincount(idx, minlength=n) > 0).astype(np.float64)
        return float(np.mean(self.ref_in_sample_balls @ present > 0))


def manifold_membership(ref: np.ndarray, samples: np.ndarray, k: int = ADM_K) -> ManifoldMembership:
    r = torch.as_tensor(np.asarray(ref), dtype=torch.float64)
    s = torch.as_tensor(np.asarray(samples), dtype=torch.float64)
    if r.shape[1] != s.shape[1]:
        raise ValueError(f"feature sizes differ: {r.shape[1]} vs {s.shape[1]}")
    radii_ref = torch.as_tensor(manifold_radii(r.numpy(), k))
    radii_s = torch.as_tensor(manifold_radii(s.numpy(), k))
    sample_in_ref = np.asarray(_inside(s, r, radii_ref).sum(axis=1)).ravel() > 0
    return ManifoldMembership(sample_in_ref=sample_in_ref, ref_in_sample_balls=_inside(r, s, radii_s))


def precision_recall(ref: np.ndarray, samples: np.ndarray, k: int = ADM_K) -> tuple[float, float]:
    m = manifold_membership(ref, samples, k)
    return m.precision(), m.recall()
