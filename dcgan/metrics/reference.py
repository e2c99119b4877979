"""Reference Inception statistics stored with a model, so that a generator can be scored by FID where no dataset is
at hand (the automated canary analysis of `dcgan rollout canary V --analyze`, serving/rollout/canary.py).

Beside the SavedModel, in `assets.extra/` (TF Serving and `dcgan serve` ignore the folder; the Pusher copies it):

    fid_reference.npz    mu (D,) float64 and, for N < D, `factor` (N×D float32, F = (X − μ)/√(N − 1), Σ = FᵀF:
                         exact and ~5× smaller than Σ at N = 431), else `sigma` (D×D float32)
    fid_reference.json   format, n, the Inception identity (weights checksum, resampling, input range), the data
                         (description, content fingerprint, split, subset size and seed), the evaluation gate's
                         `max_fid_regression` when the pipeline passed it, the file names

The statistics are those of the same real images `dcgan evaluate` / the FidEvaluator use (same subset size and seed,
same feature cache key), so writing them at training time costs one pass over the eval split that the evaluator then
reads from the cache. FID against them is `ReferenceStats.fid(features)`.
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dcgan import fileio
from dcgan.metrics import scores

log = logging.getLogger(__name__)

FORMAT = "dcgan-fid-reference/1"
STATS_FILE = "fid_reference.npz"
META_FILE = "fid_reference.json"
ASSETS_EXTRA = "assets.extra"


class ReferenceStatsError(ValueError):
    """Reference statistics are missing, unreadable, or do not match the extractor in use."""


@dataclass
class ReferenceStats:
    mu: np.ndarray
    n: int
    factor: np.ndarray | None = None  # N×D, Σ = FᵀF (N < D)
    sigma: np.ndarray | None = None  # D×D (N ≥ D)
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, features: np.ndarray, meta: dict[str, Any] | None = None) -> ReferenceStats:
        f = np.asarray(features, np.float64)
        if f.ndim != 2 or len(f) < 2:
            raise ReferenceStatsError(f"reference statistics need at least 2 feature vectors, got shape {f.shape}")
        mu = f.mean(axis=0)
        if len(f) < f.shape[1]:
            return cls(mu, len(f), factor=scores.covariance_factor(f, mu).astype(np.float32), meta=dict(meta or {}))
        return cls(mu, len(f), sigma=np.cov(f, rowvar=False).astype(np.float32), meta=dict(meta or {}))

    @property
    def identity(self) -> str:
        return str(self.meta.get("extractor", ""))

    def fid(self, features: np.ndarray) -> float:
        """FID of a feature set against these statistics (NaN when a feature row is not finite)."""
        g = np.asarray(features, np.float64)
        if g.ndim != 2 or len(g) < 2 or g.shape[1] != len(self.mu):
            raise ValueError(f"need N×{len(self.mu)} features with N ≥ 2, got shape {g.shape}")
        if not np.all(np.isfinite(g)):
            return float("nan")
        mu = g.mean(axis=0)
        if self.factor is not None and len(g) < g.shape[1]:
            return scores.fid_from_factors(mu, scores.covariance_factor(g, mu), self.mu, self.factor)
        sigma = self.sigma if self.sigma is not None else self.factor.T.astype(np.float64) @ self.factor
        return scores.frechet_distance(mu, np.cov(g, rowvar=False), self.mu, sigma)


def paths(saved_model_dir: str) -> tuple[str, str]:
    folder = fileio.join(saved_model_dir, ASSETS_EXTRA)
    return fileio.join(folder, STATS_FILE), fileio.join(folder, META_FILE)


def compute_reference_stats(data: str, split: str = "eval", num: int | None = None, seed: int = 0,
                            cache: str | None = None, batch_size: int | None = None,
                            progress: bool = False) -> ReferenceStats:
    """Statistics of `num` images (seeded subset; all when None) of `data` — an Examples directory (its `split`),
    TFRecord files or a folder — with the shared feature cache (the evaluator's key for the same num/seed)."""
    from dcgan.metrics import features as featlib
    from dcgan.metrics.inception import DEFAULT_BATCH_SIZE, get_extractor

    extractor = get_extractor(batch_size=batch_size or DEFAULT_BATCH_SIZE, cache=cache)
    image_set = featlib.resolve_image_set(data, split)
    feats = featlib.image_set_features(image_set, num, seed, extractor, cache, progress=progress)
    meta = {"format": FORMAT, "n": len(feats), "extractor": extractor.identity, "data": feats.description,
            "data_fingerprint": feats.fingerprint, "split": split, "num_requested": num, "seed": seed}
    return ReferenceStats.of(feats.features, meta)


def write_reference_stats(saved_model_dir: str, stats: ReferenceStats, **extra_meta: Any) -> str:
    """Write fid_reference.npz and .json (each atomically, local or object store) into `assets.extra/`; returns
    the .npz path. `extra_meta` (e.g. max_fid_regression) goes into the JSON."""
    npz_path, meta_path = paths(saved_model_dir)
    fileio.makedirs(fileio.join(saved_model_dir, ASSETS_EXTRA))
    arrays: dict[str, np.ndarray] = {"mu": np.asarray(stats.mu, np.float64), "n": np.asarray(stats.n)}
    if stats.factor is not None:
        arrays["factor"] = np.asarray(stats.factor, np.float32)
    else:
        arrays["sigma"] = np.asarray(stats.sigma, np.float32)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    fileio.write_bytes_atomic(npz_path, buf.getvalue())
    meta = {**stats.meta, **extra_meta, "format": FORMAT, "n": int(stats.n), "stats_file": STATS_FILE,
            "covariance": "factor" if stats.factor is not None else "sigma",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    fileio.write_json_atomic(meta_path, meta, indent=2, sort_keys=True)
    stats.meta = meta
    return npz_path


def has_reference_stats(saved_model_dir: str) -> bool:
    return all(fileio.exists(p) for p in paths(saved_model_dir))


def read_reference_stats(saved_model_dir: str) -> ReferenceStats:
    """The statistics stored with a model; ReferenceStatsError naming the file when missing or unreadable."""
    npz_path, meta_path = paths(saved_model_dir)
    if not has_reference_stats(saved_model_dir):
        raise ReferenceStatsError(f"{saved_model_dir} has no reference statistics ({npz_path} and {meta_path}; "
                                  "written by the pipeline's Trainer or `dcgan export --reference-stats DATA`)")
    try:
        meta = json.loads(fileio.read_bytes(meta_path).decode())
        with np.load(io.BytesIO(fileio.read_bytes(npz_path))) as data:
            arrays = {k: data[k] for k in data.files}
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
        return ReferenceStats(arrays["mu"], int(arrays["n"]), arrays.get("factor"), arrays.get("sigma"), meta)
    except (OSError, ValueError, KeyError) as e:
        raise ReferenceStatsError(f"unreadable reference statistics {npz_path}: {e}") from None


def store_reference_stats(saved_model_dir: str, data: str, split: str = "eval", num: int | None = None,
                          seed: int = 0, cache: str | None = None, **extra_meta: Any) -> dict[str, Any]:
    """Compute and write; returns the metadata (for training summaries and CLI output)."""
    t0 = time.perf_counter()
    stats = compute_reference_stats(data, split, num, seed, cache)
    write_reference_stats(saved_model_dir, stats, **extra_meta)
    log.info("FID reference statistics of %d images of %s in %s/%s (%.1f s)", stats.n, stats.meta.get("data"),
             saved_model_dir, ASSETS_EXTRA, time.perf_counter() - t0)
    return stats.meta
