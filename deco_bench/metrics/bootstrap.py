"""Bootstrap confidence intervals over the generated samples, reusing extracted features (pure maths).

Replicate b draws n sample indices with replacement (seeded: numpy default_rng(seed)); every metric is recomputed on
the resampled features against the fixed reference; the interval is the percentile interval of the replicates.
Notes on what a replicate means per metric (document, do not hide):
- FD/sFD/KID/IS: recomputed on the resampled features (duplicates included). Resampled FD is slightly biased upward
  (fewer distinct points), so the percentile interval can sit a little above the point estimate at small n.
- precision: mean of the per-sample "inside the reference manifold" indicator over the resample (exact).
- recall: fraction of reference points inside the balls of the resampled samples, the balls keeping the radii
  estimated on the full sample set (recomputing radii on a resample with duplicates would shrink them to 0).
"""

from __future__ import annotations

import numpy as np

CI_LEVEL = 0.95


def resample_indices(n: int, replicates: int, seed: int) -> np.ndarray:
    """(replicates, n) indices drawn with replacement; replicate b depends only on (seed, n, b-th draw)."""
    return np.random.default_rng(seed).integers(0, n, size=(replicates, n))


def percentile_interval(values: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    lo, hi = np.percentile(np.asarray(values, np.float64), [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def difference_interval(a: np.ndarray, b: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """Interval of b - a from two independent bootstraps (replicates of independent sample sets pair freely)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"bootstrap replicate counts differ: {a.shape} vs {b.shape}")
    return percentile_interval(b - a, level)
