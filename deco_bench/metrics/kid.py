"""Kernel Inception Distance: unbiased MMD^2 with the cubic polynomial kernel, averaged over random subsets.

Same estimator, kernel (k(x, y) = (x.y / d + 1)^3) and subset draws as torch-fidelity's metric_kid.py (defaults:
100 subsets of 1,000, numpy RandomState(2020), sample subset drawn before reference subset), so the numbers agree
on the same features; computed in float64.
"""

from __future__ import annotations

import numpy as np

KID_SUBSETS = 100  # torch-fidelity default kid_subsets
KID_SUBSET_SIZE = 1000  # torch-fidelity default kid_subset_size
KID_SEED = 2020  # torch-fidelity default rng_seed


def poly_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between two equal-sized sets (diagonals of K_xx, K_yy dropped; K_xy kept)."""
    m = x.shape[0]
    k_xx, k_yy, k_xy = poly_kernel(x, x), poly_kernel(y, y), poly_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kid(samples: np.ndarray, reference: np.ndarray, subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE, seed: int = KID_SEED) -> float:
    """Mean unbiased MMD^2 over `subsets` random subsets; subset_size is capped at the smaller set's size."""
    x, y = np.asarray(samples, np.float64), np.asarray(reference, np.float64)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature sizes differ: {x.shape[1]} vs {y.shape[1]}")
    size = min(subset_size, x.shape[0], y.shape[0])
    if size < 2:
        raise ValueError("KID needs at least 2 features on each side")
    rng = np.random.RandomState(seed)
    mmds = [mmd2_unbiased(x[rng.choice(x.shape[0], size, replace=False)],
                          y[rng.choice(y.shape[0], size, replace=False)]) for _ in range(subsets)]
    return float(np.mean(mmds))
