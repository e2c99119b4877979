"""Training input: `tf.data` pipelines from a folder of images or from TFRecords in the example schema.

Two modes:
  * memory — decode every image once (with a progress bar), keep them as uint8 in RAM; the dataset yields shuffled
    index batches and the training step gathers the pixels. Iterator state is a few bytes per image, so exact resume
    is cheap. `auto` picks it when the decoded set fits in `memory_limit_mb`.
  * stream — decode on the fly from files/records (shuffled filenames/records, parallel decode, prefetch), for sets
    too big for RAM.
Unreadable or undecodable files are skipped, counted and logged by name; they never stop a run.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from dcgan import fileio, schema
from dcgan import images as imlib
from dcgan.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class ResolvedData:
    kind: str  # "folder" or "tfrecord"
    files: list[str]
    description: str


@dataclass
class TrainingData:
    """What the trainer consumes: `dataset` elements go through `lookup` to become uint8 N×H×W×C batches."""

    dataset: tf.data.Dataset
    lookup: Callable[[tf.Tensor], tf.Tensor]
    num_examples: int
    mode: str
    source: ResolvedData
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (file, reason) found so far
    images: tf.Variable | None = None


def resolve_data(data: str) -> ResolvedData:
    """Turn a --data argument into a list of image files or TFRecord files.

    Accepts: a folder of images (recursive); an Examples folder (`Split-train/`, TFX layout: the train split is
    used); a folder of TFRecord files; a TFRecord file or glob; several of those separated by commas.
    """
    parts = [p.strip() for p in data.split(",") if p.strip()]
    if not parts:
        raise DataError("no data given: pass --data with a folder of images or TFRecord files")
    image_files: list[str] = []
    record_files: list[str] = []
    for part in parts:
        if fileio.isdir(part):
            train_split = fileio.join(part, "Split-train")
            if fileio.isdir(train_split):
                record_files += sorted(fileio.glob(fileio.join(train_split, "*")))
                continue
            records = sorted(f for f in fileio.glob(fileio.join(part, "*")) if schema.is_tfrecord_path(f))
            if records:
                record_files += records
                continue
            found = [path for _, path in imlib.list_image_files(part)[0]]
            if not found:
                raise DataError(f"no image files ({', '.join(imlib.IMAGE_EXTENSIONS)}) found under {part!r}")
            image_files += found
        elif any(ch in part for ch in "*?["):
            matches = sorted(fileio.glob(part))
            if not matches:
                raise DataError(f"the pattern {part!r} matches no files")
            record_files += [m for m in matches if schema.is_tfrecord_path(m)]
            image_files += [m for m in matches if m.lower().endswith(imlib.IMAGE_EXTENSIONS)]
        elif fileio.exists(part) and not fileio.isdir(part):
            if schema.is_tfrecord_path(part):
                record_files.append(part)
            elif part.lower().endswith(imlib.IMAGE_EXTENSIONS):
                image_files.append(part)
            else:
                raise DataError(f"{part!r} is neither an image nor a TFRecord file")
        else:
            raise DataError(f"data path does not exist: {part!r}")
    if image_files and record_files:
        raise DataError("mixing image files and TFRecord files in one --data is not supported")
    if record_files:
        return ResolvedData("tfrecord", record_files, f"{len(record_files)} TFRecord file(s)")
    if not image_files:
        raise DataError(f"no image files found in {data!r}")
    return ResolvedData("folder", image_files, f"{len(image_files)} image file(s)")


class RejectLog:
    """Thread-safe record of skipped files, appended to `path` (one `reason<TAB>file<TAB>detail` line each)."""

    def __init__(self, path: str | None):
        self.path = path
        self.entries: list[tuple[str, str]] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def add(self, file: str, error: imlib.ImageRejected) -> None:
        with self._lock:
            if file in self._seen:
                return
            self._seen.add(file)
            self.entries.append((file, error.reason))
            log.warning("skipping %s (%s)", file, error)
            if self.path:
                with open(self.path, "a") as f:
                    f.write(f"{error.reason}\t{file}\t{error.detail}\n")


def _count_records(files: list[str]) -> int:
    return sum(int(tf.data.TFRecordDataset(f, compression_type=schema.compression_of(f))
                   .reduce(np.int64(0), lambda n, _: n + 1)) for f in files)


def _to_model_format(image: tf.Tensor, size: int, channels: int) -> tf.Tensor:
    """uint8 H×W×3 → uint8 size×size×channels (resized with antialiasing when the stored size differs)."""
    if channels == 1:
        image = tf.image.rgb_to_grayscale(image)
    shape = tf.shape(image)
    if image.shape[0] != size or image.shape[1] != size:
        image = tf.cond(
            tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size)),
            lambda: image,
            lambda: tf.cast(tf.clip_by_value(tf.round(
                tf.image.resize(image, [size, size], method="area", antialias=True)), 0, 255), tf.uint8),
        )
    return tf.ensure_shape(image, [size, size, channels])


def _decode_folder_into_memory(files: list[str], size: int, channels: int, crop: str, rejects: RejectLog,
                               workers: int, progress: bool) -> np.ndarray:
    def load(path: str) -> np.ndarray | None:
        try:
            return imlib.load_image_file(path, size, crop=crop)
        except imlib.ImageRejected as e:
            rejects.add(path, e)
            return None

    out = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for img in tqdm(pool.map(load, files), total=len(files), desc="decoding images", unit="img",
                        disable=not progress, leave=False):
            if img is not None:
                out.append(img if channels == 3 else img.mean(axis=-1, keepdims=True).round().astype(np.uint8))
    if not out:
        return np.zeros((0, size, size, channels), np.uint8)
    return np.stack(out)


def _decode_records_into_memory(files: list[str], size: int, channels: int, progress: bool) -> np.ndarray:
    ds = tf.data.TFRecordDataset(files, compression_type=schema.compression_of(files[0]),
                                 num_parallel_reads=tf.data.AUTOTUNE)
    ds = ds.map(lambda r: _to_model_format(schema.parse_image(r), size, channels),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors(log_warning=True)
    out = [batch for batch in tqdm(ds.batch(256).as_numpy_iterator(), desc="decoding records", unit="batch",
                                   disable=not progress, leave=False)]
    return np.concatenate(out) if out else np.zeros((0, size, size, channels), np.uint8)


def make_training_data(data: str, *, size: int, channels: int, batch_size: int, seed: int, crop: str = "center",
                       mode: str = "auto", memory_limit_mb: int = 2048, reject_log: str | None = None,
                       progress: bool = True) -> TrainingData:
    """Build the infinite, shuffled training stream for `data` (see `resolve_data`)."""
    source = resolve_data(data)
    rejects = RejectLog(reject_log)
    per_image = size * size * channels
    if source.kind == "folder":
        estimated = len(source.files)
    else:
        estimated = _count_records(source.files)
        if estimated == 0:
            raise DataError(f"the TFRecord files of {data!r} hold no examples")
    if mode == "auto":
        mode = "memory" if estimated * per_image <= memory_limit_mb * 2**20 else "stream"
    workers = max(2, os.cpu_count() or 2)

    if mode == "memory":
        if source.kind == "folder":
            array = _decode_folder_into_memory(source.files, size, channels, crop, rejects, workers, progress)
        else:
            array = _decode_records_into_memory(source.files, size, channels, progress)
        n = len(array)
        if n == 0:
            raise DataError(f"none of the {len(source.files)} file(s) in {data!r} could be decoded"
                            + (f"; the reasons are listed in {reject_log}" if reject_log else ""))
        _check_batch(batch_size, n, data)
        with tf.device("/cpu:0"):
            images = tf.Variable(array, trainable=False, name="training_images")
        ds = (tf.data.Dataset.range(n)
              .shuffle(n, seed=seed, reshuffle_each_iteration=True)
              .repeat()
              .batch(batch_size, drop_remainder=True)
              .prefetch(2))

        def lookup(indices: tf.Tensor) -> tf.Tensor:
            return tf.gather(images, indices)

        return TrainingData(ds, lookup, n, mode, source, rejects.entries, images)

    # stream mode
    _check_batch(batch_size, estimated, data)
    if source.kind == "folder":
        def load(path: bytes) -> tuple[np.ndarray, bool]:
            p = path.decode()
            try:
                img = imlib.load_image_file(p, size, crop=crop)
                if channels == 1:
                    img = img.mean(axis=-1, keepdims=True).round().astype(np.uint8)
                return img, True
            except imlib.ImageRejected as e:
                rejects.add(p, e)
                return np.zeros((size, size, channels), np.uint8), False

        def decode(path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            # stateful=False: the function is pure given the file, which lets tf.data checkpoint the iterator.
            img, ok = tf.numpy_function(load, [path], [tf.uint8, tf.bool], stateful=False)
            return tf.ensure_shape(img, [size, size, channels]), tf.ensure_shape(ok, [])

        ds = (tf.data.Dataset.from_tensor_slices(source.files)
              .shuffle(min(len(source.files), 100_000), seed=seed, reshuffle_each_iteration=True)
              .repeat()
              .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
              .filter(lambda img, ok: ok)
              .map(lambda img, ok: img))
    else:
        ds = (tf.data.Dataset.from_tensor_slices(source.files)
              .shuffle(len(source.files), seed=seed, reshuffle_each_iteration=True)
              .interleave(lambda f: tf.data.TFRecordDataset(f, compression_type=schema.compression_of(source.files[0])),
                          cycle_length=4, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
              .shuffle(10_000, seed=seed + 1, reshuffle_each_iteration=True)
              .repeat()
              .map(lambda r: _to_model_format(schema.parse_image(r), size, channels),
                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return TrainingData(ds, lambda batch: batch, estimated, mode, source, rejects.entries)


def _check_batch(batch_size: int, n: int, data: str) -> None:
    if batch_size > n:
        raise DataError(f"batch_size={batch_size} is larger than the dataset ({n} usable images in {data!r}); "
                        f"use --batch-size {max(1, n)} or fewer, or add data")
