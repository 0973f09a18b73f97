"""Pure maths: Fréchet distance (closed form, torch-fidelity, clean-fid), IS, KID, precision/recall."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deco_bench.metrics.frechet import FeatureStats, FrechetError, FrechetToReference, frechet_distance
from deco_bench.metrics.isc import inception_score
from deco_bench.metrics.kid import kid
from deco_bench.metrics.prdc import manifold_membership, manifold_radii, precision_recall


def _random_stats(seed: int, n: int = 400, d: int = 24) -> FeatureStats:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return FeatureStats.from_features(rng.normal(seed * 0.1, 1.0, (n, d)) @ mix + rng.normal(size=d))


def test_frechet_closed_form_commuting_covariances():
    # sigma_i = Q diag(l_i) Q^T share eigenvectors, so tr((s1 s2)^1/2) = sum sqrt(l1 l2) and
    # d^2 = |mu1 - mu2|^2 + sum (sqrt(l1) - sqrt(l2))^2
    rng = np.random.default_rng(0)
    d = 16
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    l1, l2 = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(l1) - np.sqrt(l2)) ** 2)
    got = frechet_distance(mu1, q @ np.diag(l1) @ q.T, mu2, q @ np.diag(l2) @ q.T)
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_one_dimensional_and_identity():
    # N(0, 4) vs N(3, 1): 9 + (2 - 1)^2 = 10
    assert frechet_distance(np.array([0.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])) == \
        pytest.approx(10.0, rel=1e-12)
    s = _random_stats(1)
    assert abs(frechet_distance(s.mu, s.sigma, s.mu, s.sigma)) < 1e-9


def test_frechet_matches_torch_fidelity_and_clean_fid():
    from cleanfid.fid import frechet_distance as cleanfid_fd
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    a, b = _random_stats(1), _random_stats(2)
    ours = frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
    tf = fid_statistics_to_metric({"mu": a.mu, "sigma": a.sigma}, {"mu": b.mu, "sigma": b.sigma},
                                  False)["frechet_inception_distance"]
    cf = cleanfid_fd(a.mu, a.sigma, b.mu, b.sigma)
    assert ours > 1.0
    assert abs(ours - tf) / tf < 1e-6
    assert abs(ours - cf) / cf < 1e-6
    # the bootstrap's eigvalsh formulation agrees with sqrtm
    assert FrechetToReference(b)(a.mu, a.sigma) == pytest.approx(ours, rel=1e-8)


def test_feature_stats_are_float64_and_order_free():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 5)).astype(np.float32)
    s, t = FeatureStats.from_features(x), FeatureStats.from_features(x[::-1])
    assert s.sigma.dtype == np.float64 and s.n == 50
    np.testing.assert_allclose(s.sigma, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-12)
    np.testing.assert_allclose(s.mu, t.mu, rtol=1e-12)


def test_frechet_bad_inputs():
    s = _random_stats(1)
    with pytest.raises(FrechetError, match="shape"):
        frechet_distance(s.mu, s.sigma, s.mu[:3], s.sigma[:3, :3])
    bad = s.sigma.copy()
    bad[0, 0] = np.nan
    with pytest.raises(FrechetError, match="NaN"):
        frechet_distance(s.mu, bad, s.mu, s.sigma)
    with pytest.raises(FrechetError, match="NaN"):
        FeatureStats.from_features(np.array([[1.0, np.inf], [0.0, 1.0]]))


def test_frechet_of_few_features_closed_form():
    # x = (+-a e1, +-b e2) in d = 8: mean 0, covariance diag(2a^2/3, 2b^2/3, 0, ...); against N(m, c I),
    # tr((s1 s2)^1/2) = sqrt(c) (sqrt(2/3) a + sqrt(2/3) b) and d^2 = |m|^2 + tr(s1) + 8c - 2 tr(...)
    a, b, c, d = 1.5, 0.5, 0.7, 8
    x = np.zeros((4, d))
    x[0, 0], x[1, 0], x[2, 1], x[3, 1] = a, -a, b, -b
    m = np.linspace(-1.0, 1.0, d)
    expected = m @ m + (2 * a * a + 2 * b * b) / 3 + d * c - 2 * np.sqrt(c) * np.sqrt(2 / 3) * (a + b)
    got = FrechetToReference(FeatureStats(m, c * np.eye(d), 0)).of_features(x)
    assert got == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n,d", [(6, 64), (40, 40), (12, 200)])
def test_frechet_of_few_features_equals_the_full_form(n, d):
    """n <= d takes the n x n form; it equals the d x d form on the same statistics up to the square roots of the
    d - n + 1 rounding-level eigenvalues that the d x d form adds (~1e-8 relative here; the closed form above holds
    the n x n form to 1e-12), also on a bootstrap resample with repeated rows."""
    rng = np.random.default_rng(n + d)
    x = rng.normal(0.3, 1.0, (n, d)) * rng.uniform(0.2, 2.0, d)
    ref = _random_stats(5, n=3 * d, d=d)
    to_ref = FrechetToReference(ref)
    for rows in (x, x[rng.integers(0, n, n)]):
        s = FeatureStats.from_features(rows)
        assert to_ref.of_features(rows) == pytest.approx(frechet_distance(s.mu, s.sigma, ref.mu, ref.sigma), rel=1e-7)


def test_frechet_of_many_features_is_the_distance_of_their_statistics():
    x = np.random.default_rng(2).normal(size=(60, 24))
    ref = _random_stats(3)
    xc = x - x.mean(0)
    assert FrechetToReference(ref).of_features(x) == pytest.approx(FrechetToReference(ref)(x.mean(0), xc.T @ xc / 59),
                                                                   rel=1e-12)


def test_frechet_of_features_bad_inputs():
    to_ref = FrechetToReference(_random_stats(1))
    with pytest.raises(FrechetError, match="shape mismatch: features of dimension 5"):
        to_ref.of_features(np.ones((10, 5)))
    with pytest.raises(FrechetError, match="n >= 2"):
        to_ref.of_features(np.ones((1, 24)))
    with pytest.raises(FrechetError, match="NaN"):
        to_ref.of_features(np.full((3, 24), np.nan))
    bad = _random_stats(1)
    with pytest.raises(FrechetError, match="reference statistics contain NaN"):
        FrechetToReference(FeatureStats(bad.mu, np.full_like(bad.sigma, np.inf), 0))


def test_inception_score_closed_forms():
    k = 10
    confident = np.full((40, k), -50.0)
    confident[np.arange(40), np.arange(40) % k] = 50.0  # one-hot, classes used equally: IS = k
    assert inception_score(confident) == pytest.approx(k, rel=1e-9)
    assert inception_score(np.zeros((40, k))) == pytest.approx(1.0, abs=1e-12)  # uniform: IS = 1
    # ADM splits of 5,000 in file order: first split all class 0 (IS 1), second split k classes (IS k)
    two = np.full((10000, k), -50.0)
    two[:5000, 0] = 50.0
    two[5000 + np.arange(5000), np.arange(5000) % k] = 50.0
    assert inception_score(two) == pytest.approx((1 + k) / 2, rel=1e-9)


def test_inception_score_matches_torch_fidelity_single_split():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = np.random.default_rng(0).normal(0, 3, (64, 20))
    ref = isc_features_to_metric(torch.from_numpy(logits), splits=1)["inception_score_mean"]
    assert inception_score(logits) == pytest.approx(ref, rel=1e-12)


def test_kid_matches_torch_fidelity_and_is_near_zero_for_same_distribution():
    from torch_fidelity.metric_kid import kid_features_to_metric

    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, (60, 16)), rng.normal(0.5, 1, (50, 16))
    ref = kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=7, kid_subset_size=40,
                                 verbose=False)["kernel_inception_distance_mean"]
    assert kid(x, y, subsets=7, subset_size=40) == pytest.approx(ref, rel=1e-10)
    assert kid(x, y, subsets=7, subset_size=40) > 0.05
    same = kid(rng.normal(0, 1, (400, 16)), rng.normal(0, 1, (400, 16)), subsets=5, subset_size=400)
    assert abs(same) < 0.03  # unbiased estimator: ~0 up to its sampling noise


def test_manifold_radii_and_precision_recall_by_hand():
    # 1-D: points 0..5; k=3 -> radius of 0 is (3-0)^2 = 9, of 2 is 4 (neighbours 1,3 at 1; 0,4 at 2) ...
    ref = np.arange(6, dtype=np.float64)[:, None]
    np.testing.assert_allclose(manifold_radii(ref, 3), [9, 4, 4, 4, 4, 9])
    samples = np.array([[-3.0], [2.5], [8.0], [20.0], [21.0], [22.0], [23.0]])
    p, r = precision_recall(ref, samples, 3)
    # inside: -3 (|-3-0|^2 = 9 <= 9), 2.5, 8 (|8-5|^2 = 9 <= 9); outside: 20..23 -> 3/7
    assert p == pytest.approx(3 / 7)
    # sample radii (k=3 within samples): -3 -> 23 (d=26^2=676)... every ref point is inside some sample ball
    assert r == pytest.approx(1.0)


def test_precision_recall_match_torch_fidelity():
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    rng = np.random.default_rng(1)
    ref, fake = rng.normal(0, 1, (80, 8)), rng.normal(0.7, 1.2, (70, 8))
    p, r = precision_recall(ref, fake, 3)
    tp, tr = calculate_precision_recall_full(torch.from_numpy(fake), torch.from_numpy(ref), 3)
    assert 0.05 < p < 0.95 and 0.05 < r < 0.95  # informative, not saturated
    assert p == pytest.approx(tp, abs=1e-6) and r == pytest.approx(tr, abs=1e-6)  # theirs: a float32 mean


def test_membership_recall_on_resample_uses_only_resampled_balls():
    ref = np.arange(6, dtype=np.float64)[:, None]
    samples = np.array([[0.0], [1.0], [2.0], [3.0], [40.0], [41.0], [42.0], [43.0]])
    m = manifold_membership(ref, samples, 3)
    full = m.recall()
    only_far = m.recall(np.array([4, 5, 6, 7, 4]))  # the far cluster's balls do not reach 0..5
    assert full > 0.5 and only_far == 0.0
    assert m.precision(np.array([0, 0, 4])) == pytest.approx(2 / 3)
