"""FID, KID, precision/recall, nearest neighbours and the gating rules, on feature sets with known answers (numpy
only: no network, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from dcgan.metrics import gating, scores
from dcgan.metrics.memorization import memorization_check, pairs_grid

D = 2048


def _features(n: int, seed: int, d: int = D, scale: float = 1.0) -> np.ndarray:
    """n samples of one fixed distribution (per d and scale) that looks like pool3 features: non-negative,
    correlated, anisotropic (a fixed random mixing of 64 gamma factors, plus noise). `seed` draws the samples."""
    mixing = np.abs(np.random.default_rng(12345).normal(0, 0.2, size=(64, d)))
    rng = np.random.default_rng(seed)
    factors = rng.gamma(2.0, 0.5, size=(n, 64))
    return scale * (factors @ mixing + rng.normal(0, 0.05, size=(n, d)))


# -- FID -------------------------------------------------------------------------------------------------------------
def test_fid_of_a_set_with_itself_is_zero():
    f = _features(200, 0)
    assert scores.fid_from_features(f, f) == pytest.approx(0.0, abs=1e-8)
    s = scores.FeatureStats.of(f[:, :256])
    assert scores.fid_from_stats(s, s) == pytest.approx(0.0, abs=1e-6)  # the eigh route (statistics only)


def test_fid_of_gaussians_matches_the_closed_form_diagonal():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert scores.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)


def test_fid_of_gaussians_matches_the_closed_form_full_covariance():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
    sigma1, sigma2 = a @ a.T + 0.1 * np.eye(8), b @ b.T + 0.1 * np.eye(8)
    mu1, mu2 = rng.normal(size=8), rng.normal(size=8)
    # Well-conditioned and full rank: here sqrtm(Σ1Σ2) is reliable and serves as the reference.
    expected = (np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2)
                - 2 * np.real(np.trace(scipy.linalg.sqrtm(sigma1 @ sigma2))))
    assert scores.frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-9)
    # Sampled from those Gaussians, the estimate converges to it.
    x = rng.multivariate_normal(mu1, sigma1, size=200_000)
    y = rng.multivariate_normal(mu2, sigma2, size=200_000)
    assert scores.fid_from_features(x, y) == pytest.approx(expected, rel=0.01)


def test_fid_is_exact_below_2048_samples_where_covariances_are_rank_deficient():
    """N = 100 < D = 2048: Σ has rank 99. Exact answers exist for a shifted and a scaled copy of a set:
    FID(A, A + c) = ‖c‖² and FID(A, sA) = (1 − s)²(‖μ‖² + tr Σ)."""
    a = _features(100, 3)
    c = np.random.default_rng(4).normal(0, 0.3, D)
    assert scores.fid_from_features(a, a + c) == pytest.approx(c @ c, rel=1e-9)
    s = 1.7
    mu, sigma = a.mean(0), np.cov(a, rowvar=False)
    expected = (1 - s) ** 2 * (mu @ mu + np.trace(sigma))
    assert scores.fid_from_features(a, s * a) == pytest.approx(expected, rel=1e-9)
    # The low-rank route (nuclear norm of ABᵀ) and the eigh route (Σ1^½ Σ2 Σ1^½) agree on two unrelated sets.
    b = _features(100, 5, scale=1.1)
    low_rank = scores.fid_from_features(a, b)
    eigh = scores.fid_from_stats(scores.FeatureStats.of(a), scores.FeatureStats.of(b))
    assert np.isfinite(low_rank) and low_rank > 0
    assert eigh == pytest.approx(low_rank, rel=1e-6)


def test_fid_needs_two_samples_and_equal_dimensions():
    with pytest.raises(ValueError, match="at least 2"):
        scores.FeatureStats.of(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="same D"):
        scores.fid_from_features(np.zeros((3, 4)), np.zeros((3, 5)))


# -- KID -------------------------------------------------------------------------------------------------------------
def test_kid_is_unbiased_for_two_samples_of_one_distribution():
    # Biased MMD² estimators are positive here (≈ 2·E k(x,x)/m); the unbiased one averages to zero.
    means = [scores.kernel_inception_distance(_features(60, 10 + i, d=256), _features(60, 100 + i, d=256),
                                              num_subsets=20, seed=i).mean for i in range(20)]
    spread = np.std(means, ddof=1) / np.sqrt(len(means))
    assert abs(np.mean(means)) < 3 * spread, (np.mean(means), spread)
    different = scores.kernel_inception_distance(_features(60, 7, d=256), _features(60, 8, d=256, scale=1.3))
    assert different.mean > 10 * spread


def test_kid_reports_mean_and_std_over_subsets():
    kid = scores.kernel_inception_distance(_features(80, 1, d=64), _features(120, 2, d=64), num_subsets=30,
                                           max_subset_size=50)
    assert kid.subsets == 30 and kid.subset_size == 50 and kid.std > 0
    whole = scores.kernel_inception_distance(_features(40, 1, d=64), _features(40, 2, d=64), num_subsets=5)
    assert whole.subset_size == 40 and whole.std < 1e-9 * abs(whole.mean)  # every subset is the whole set


def test_kid_without_precomputed_kernels_gives_the_same_value(monkeypatch):
    a, b = _features(50, 1, d=32), _features(60, 2, d=32)
    precomputed = scores.kernel_inception_distance(a, b, num_subsets=7, max_subset_size=30, seed=3)
    monkeypatch.setattr(scores, "KID_PRECOMPUTE_MAX", 0)  # large sets: kernels per subset
    per_subset = scores.kernel_inception_distance(a, b, num_subsets=7, max_subset_size=30, seed=3)
    assert per_subset.mean == pytest.approx(precomputed.mean, rel=1e-10)
    assert per_subset.std == pytest.approx(precomputed.std, rel=1e-8)


# -- precision / recall ----------------------------------------------------------------------------------------------
def test_precision_and_recall_of_identical_sets_are_one():
    f = _features(100, 0, d=64)
    pr = scores.precision_recall(f, f.copy())
    assert pr.precision == 1.0 and pr.recall == 1.0 and pr.k == 3


def test_precision_and_recall_separate_fidelity_from_coverage():
    real = _features(200, 0, d=32)
    far = real + 100.0
    assert scores.precision_recall(real, far).precision == 0.0
    # Mode collapse: generated samples all near a few real ones → high precision, low recall.
    collapsed = real[:5].repeat(40, axis=0) + np.random.default_rng(1).normal(0, 1e-3, (200, 32))
    pr = scores.precision_recall(real, collapsed)
    assert pr.precision > 0.95 and pr.recall < 0.2


# -- nearest neighbours / memorisation -------------------------------------------------------------------------------
def test_memorised_samples_are_found_at_distance_zero():
    train = _features(50, 0, d=32)
    heldout = _features(30, 1, d=32)
    copies = train[[3, 7, 11]]
    report = memorization_check(np.concatenate([copies, _features(5, 2, d=32)]), train, heldout)
    assert report.nearest[:3].tolist() == [3, 7, 11]
    np.testing.assert_allclose(report.distance[:3], 0.0, atol=1e-6)
    assert report.closest(3).tolist() == [0, 1, 2]
    summary = report.summary()
    assert summary["fraction_closer_than_heldout"] == pytest.approx(3 / 8)
    assert summary["nn_distance_min"] == pytest.approx(0.0, abs=1e-6)


def test_nearest_neighbours_can_exclude_the_sample_itself():
    f = _features(20, 0, d=8)
    nn = scores.nearest_neighbours(f, f, exclude_self=True, block=7)
    assert (nn.index != np.arange(20)).all() and (nn.distance > 0).all()


def test_pairs_grid_puts_each_sample_beside_its_neighbour():
    gen = [np.full((8, 8, 3), 10, np.uint8), np.full((8, 8, 3), 20, np.uint8)]
    train = [np.full((16, 16, 3), 200, np.uint8), np.full((8, 8, 1), 100, np.uint8)]  # other size, grey
    grid = pairs_grid(gen, train, pairs_per_row=2, gap=6)
    assert grid.shape == (8 + 2 * 6, 2 * (8 + 2 + 8) + 3 * 6, 3)
    assert grid[6, 6, 0] == 10 and grid[6, 6 + 10, 0] == 200 and grid[6, 6 + 18 + 6 + 10, 0] == 100


# -- gating ----------------------------------------------------------------------------------------------------------
def test_a_model_under_the_threshold_is_blessed_with_the_reason():
    d = gating.decide(42.0, gating.GateConfig(fid_threshold=50.0), num_samples=1000)
    assert d.blessed and "FID 42.00 ≤ threshold 50.00 at N=1000" in d.reason


def test_a_model_over_the_threshold_is_not_blessed():
    d = gating.decide(232.5, gating.GateConfig(fid_threshold=150.0))
    assert not d.blessed and d.reason.startswith("not blessed") and "232.50 > threshold 150.00" in d.reason


def test_a_regression_beyond_the_allowance_is_not_blessed():
    config = gating.GateConfig(fid_threshold=300.0, max_fid_regression=5.0)
    worse = gating.decide(110.0, config, baseline_fid=100.0)
    assert not worse.blessed and "+10.00 beyond the allowed regression 5.00" in worse.reason
    assert [c.rule for c in worse.checks if not c.passed] == ["regression"]
    within = gating.decide(104.0, config, baseline_fid=100.0)
    assert within.blessed and "within the allowed regression" in within.reason
    first = gating.decide(104.0, config, baseline_fid=None)
    assert first.blessed and "no baseline" in first.reason


def test_a_non_finite_fid_is_never_blessed():
    for value in (float("nan"), float("inf")):
        d = gating.decide(value, gating.GateConfig())
        assert not d.blessed and "not a finite number" in d.reason


def test_gate_settings_are_validated():
    with pytest.raises(gating.GateConfigError, match="fid_threshold"):
        gating.GateConfig(fid_threshold=-1).validate()
    assert gating.decide(10.0, gating.GateConfig()).blessed  # no rules: blessed, and it says so
