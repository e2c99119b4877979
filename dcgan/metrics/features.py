"""Image sets for the metrics (folders, TFRecord sets, Examples splits, generators) and their Inception features,
with real-data features cached per dataset fingerprint.

An `ImageSet` is a deterministic, indexable list of images: a folder of image files (recursive, sorted), TFRecord
files in the example schema, or one split of an Examples directory (`Split-<name>/`, TFX layout). Its fingerprint
hashes the content (file bytes, or the encoded images of TFRecords), so the cache (`<cache_dir>/features/<key>.npz`)
is keyed by content, the subset drawn and the extractor's identity (weights checksum, resampling, input range) —
never by paths or mtimes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from dcgan import fileio, schema
from dcgan import images as imlib
from dcgan.errors import DataError
from dcgan.fileio import write_bytes_atomic
from dcgan.metrics.inception import FeatureExtractor, cache_dir, get_extractor

log = logging.getLogger(__name__)

CACHE_FORMAT = "dcgan-fid-features/1"


@dataclass
class ImageSet:
    """A list of images on disk: `kind` is "folder" (image files) or "tfrecord" (examples); `files` are sorted."""

    kind: str
    files: list[str]
    description: str
    root: str

    _count: int | None = None

    def count(self) -> int:
        if self._count is None:
            if self.kind == "folder":
                self._count = len(self.files)
            else:
                self._count = sum(1 for _ in self._records())
        return self._count

    def _records(self) -> Iterator[bytes]:
        import tensorflow as tf

        for path in self.files:
            yield from tf.data.TFRecordDataset(path, compression_type=schema.compression_of(path)).as_numpy_iterator()

    def iter_images(self, indices: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(index, H×W×3 uint8) for every image, or for `indices` only, in index order. Undecodable entries are
        skipped with a warning (their index is absent)."""
        wanted = None if indices is None else set(int(i) for i in indices)
        if self.kind == "folder":
            for i, path in enumerate(self.files):
                if wanted is not None and i not in wanted:
                    continue
                try:
                    yield i, _decode_file(path)
                except imlib.ImageRejected as e:
                    log.warning("skipping %s (%s)", path, e)
            return
        for i, record in enumerate(self._records()):
            if wanted is not None and i not in wanted:
                continue
            try:
                png = schema.parse_example_proto(record)[schema.IMAGE_KEY]
                yield i, imlib.decode_image(png)
            except (imlib.ImageRejected, KeyError, IndexError, ValueError) as e:
                log.warning("skipping record %d of %s (%s)", i, self.description, e)

    def load(self, indices: list[int] | np.ndarray) -> dict[int, np.ndarray]:
        """The images at `indices` (for grids)."""
        return dict(self.iter_images(np.asarray(indices, np.int64)))

    def fingerprint(self) -> str:
        """SHA-256 of the set's content: image files' names and bytes; for TFRecords, the encoded images of the
        records in order (not the files: GZIP headers carry timestamps, and tf.Example's feature map serialises in
        no fixed order, so equal data written twice differs on disk)."""
        h = hashlib.sha256(f"{self.kind}\n".encode())
        if self.kind == "tfrecord":
            import tensorflow as tf

            for record in self._records():
                image = tf.train.Example.FromString(record).features.feature[schema.IMAGE_KEY].bytes_list.value[0]
                h.update(len(image).to_bytes(8, "little"))
                h.update(image)
            return h.hexdigest()
        for path in self.files:
            h.update(os.path.relpath(path, self.root).encode() + b"\0")
            with fileio.open_file(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
            h.update(b"\0")
        return h.hexdigest()


def _decode_file(path: str) -> np.ndarray:
    try:
        with fileio.open_file(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise imlib.ImageRejected(imlib.UNREADABLE, f"{type(e).__name__}: {e.strerror or e}") from e
    return imlib.decode_image(data)


def examples_splits(path: str) -> list[str]:
    """Split names of an Examples directory (`Split-<name>/` subfolders), [] when `path` is not one."""
    if not fileio.isdir(path):
        return []
    return sorted(n[len("Split-"):] for n in fileio.listdir(path)
                  if n.startswith("Split-") and fileio.isdir(fileio.join(path, n)))


def resolve_image_set(path: str, split: str = "eval") -> ImageSet:
    """A folder of images (recursive), a folder of TFRecord files, an Examples directory (its `split`), a TFRecord
    file, or a glob of TFRecord/image files."""
    from dcgan.data import resolve_data

    splits = examples_splits(path)
    if splits:
        if split not in splits:
            raise DataError(f"{path!r} is an Examples directory without a {split!r} split (it has: "
                            f"{', '.join(splits)})")
        split_dir = fileio.join(path, f"Split-{split}")
        files = sorted(f for f in fileio.glob(fileio.join(split_dir, "*")) if schema.is_tfrecord_path(f))
        if not files:
            raise DataError(f"{split_dir!r} holds no TFRecord files")
        return ImageSet("tfrecord", files, f"{path} [{split} split]", split_dir)
    if not fileio.exists(path) and not any(c in path for c in "*?["):
        raise DataError(f"data path does not exist: {path!r}")
    resolved = resolve_data(path)
    root = path if fileio.isdir(path) else os.path.dirname(path.split("*")[0]) or "."
    return ImageSet(resolved.kind, resolved.files, f"{path} ({resolved.description})", root)


def select_indices(count: int, limit: int | None, seed: int = 0) -> np.ndarray:
    """All of 0..count−1, or a seeded random subset of `limit` of them (sorted)."""
    if limit is None or limit >= count:
        return np.arange(count, dtype=np.int64)
    if limit <= 0:
        raise ValueError(f"limit={limit} must be positive")
    return np.sort(np.random.default_rng(seed).choice(count, size=limit, replace=False)).astype(np.int64)


@dataclass
class SetFeatures:
    """Inception features of (a subset of) an image set: row i belongs to image `indices[i]` of the set."""

    features: np.ndarray
    indices: np.ndarray
    fingerprint: str
    description: str
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.features)


def _cache_path(fingerprint: str, limit: int | None, seed: int, extractor: FeatureExtractor,
                cache: str | None) -> str:
    key = json.dumps({"format": CACHE_FORMAT, "data": fingerprint, "limit": limit, "seed": seed,
                      "extractor": extractor.identity}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return os.path.join(cache_dir(cache), "features", f"{digest}.npz")


def image_set_features(image_set: ImageSet, limit: int | None = None, seed: int = 0,
                       extractor: FeatureExtractor | None = None, cache: str | None = None, use_cache: bool = True,
                       progress: bool = True) -> SetFeatures:
    """Features of `limit` images of the set (a seeded random subset; all when None), from the cache when the same
    content, subset and extractor were seen before."""
    extractor = extractor or get_extractor(cache=cache)
    fingerprint = image_set.fingerprint()
    count = image_set.count()
    if count == 0:
        raise DataError(f"{image_set.description} holds no images")
    if limit is not None and limit >= count:
        limit = None  # the whole set, however it was asked for: one cache entry
    path = _cache_path(fingerprint, limit, seed if limit else 0, extractor, cache)
    if use_cache and os.path.isfile(path):
        try:
            with np.load(path) as data:
                meta = json.loads(str(data["meta"]))
                if meta.get("fingerprint") == fingerprint and meta.get("extractor") == extractor.identity:
                    return SetFeatures(data["features"], data["indices"], fingerprint, image_set.description, True)
        except (OSError, ValueError, KeyError) as e:
            log.warning("ignoring unreadable features cache %s (%s)", path, e)
    indices = select_indices(count, limit, seed)
    kept: list[int] = []

    def images() -> Iterator[np.ndarray]:
        for i, image in image_set.iter_images(indices):
            kept.append(i)
            yield image

    t0 = time.perf_counter()
    features = extractor.from_images(images(), total=len(indices), progress=progress,
                                     desc=f"features of {os.path.basename(image_set.root.rstrip('/')) or 'data'}")
    if len(features) < 2:
        raise DataError(f"{image_set.description}: fewer than 2 decodable images")
    kept_indices = np.asarray(kept, np.int64)
    log.info("%d features of %s in %.1fs", len(features), image_set.description, time.perf_counter() - t0)
    if use_cache:
        _save_features(path, features, kept_indices, {"fingerprint": fingerprint, "extractor": extractor.identity,
                                                      "limit": limit, "seed": seed,
                                                      "description": image_set.description})
    return SetFeatures(features, kept_indices, fingerprint, image_set.description, False)


def array_features(images: np.ndarray, extractor: FeatureExtractor | None = None, cache: str | None = None,
                   use_cache: bool = True, progress: bool = False, description: str = "images") -> SetFeatures:
    """Features of an in-memory uint8 image array, cached by a hash of its bytes (e.g. the trainer's images)."""
    extractor = extractor or get_extractor(cache=cache)
    images = np.ascontiguousarray(images)
    h = hashlib.sha256(f"array {images.shape} {images.dtype}\n".encode())
    h.update(images.tobytes())
    fingerprint = h.hexdigest()
    path = _cache_path(fingerprint, None, 0, extractor, cache)
    if use_cache and os.path.isfile(path):
        try:
            with np.load(path) as data:
                return SetFeatures(data["features"], data["indices"], fingerprint, description, True)
        except (OSError, ValueError, KeyError) as e:
            log.warning("ignoring unreadable features cache %s (%s)", path, e)
    features = extractor(images, progress=progress, desc=f"features of {description}")
    indices = np.arange(len(images), dtype=np.int64)
    if use_cache:
        _save_features(path, features, indices, {"fingerprint": fingerprint, "extractor": extractor.identity,
                                                 "description": description})
    return SetFeatures(features, indices, fingerprint, description, False)


def _save_features(path: str, features: np.ndarray, indices: np.ndarray, meta: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    meta = {"format": CACHE_FORMAT, **meta, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    buf = io.BytesIO()
    np.savez(buf, features=features, indices=indices, meta=np.array(json.dumps(meta)))
    write_bytes_atomic(path, buf.getvalue())


# -- generators ------------------------------------------------------------------------------------------------------
Sampler = Callable[[np.ndarray], np.ndarray]  # z [N, z_dim] float32 → images [N, H, W, C] in [-1, 1]


def generated_images(sampler: Sampler, z_dim: int, n: int, seed: int = 0,
                     batch_size: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches of (uint8 images, finite mask) from the generator for z of seeds seed..seed+n−1 (the seeds
    `dcgan sample` and the `generate` signature use, so any image can be regenerated). An image with a NaN or
    infinite pixel is flagged in the mask (its uint8 version is meaningless)."""
    from dcgan.latent import z_from_seeds

    for start in range(0, n, batch_size):
        seeds = np.arange(seed + start, seed + min(n, start + batch_size))
        images = np.asarray(sampler(z_from_seeds(seeds, z_dim)))
        finite = np.isfinite(images.reshape(len(images), -1)).all(axis=1) if images.dtype != np.uint8 else \
            np.ones(len(images), bool)
        yield imlib.to_uint8(np.nan_to_num(images) if not finite.all() else images), finite


def generator_features(sampler: Sampler, z_dim: int, n: int, seed: int = 0,
                       extractor: FeatureExtractor | None = None, progress: bool = True) -> np.ndarray:
    """Features of n generated images (rows of NaN for images with non-finite pixels, so no metric of a broken
    generator can look good)."""
    extractor = extractor or get_extractor()
    masks: list[np.ndarray] = []

    def batches() -> Iterator[np.ndarray]:
        for images, finite in generated_images(sampler, z_dim, n, seed, batch_size=max(extractor.batch_size, 32)):
            masks.append(finite)
            yield images

    features = extractor.from_batches(batches(), total=n, progress=progress, desc="features of generated images")
    features[~np.concatenate(masks)] = np.nan
    return features
