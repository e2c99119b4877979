"""The example schema of the project's TFRecords — the contract between ingest (writer) and trainer/evaluator (readers).

One `tf.train.Example` per face image:

| feature            | type        | meaning                                                                      |
|--------------------|-------------|------------------------------------------------------------------------------|
| `image`            | bytes       | PNG, H×W×3 uint8 RGB (H = W = the ingest size)                               |
| `height`, `width`  | int64       | the PNG's size                                                               |
| `id`               | bytes       | stable identifier: the source-relative path, zip member name or avatar index |
| `source`           | bytes       | where it came from: folder path, zip path, or `avatars:N:SEED`              |
| `sha256`           | bytes       | hex SHA-256 of the encoded PNG (dedup key, split key)                        |
| `attr/<name>`      | bytes       | one optional attribute label per feature, as text (e.g. `attr/hair_color`)   |

Attributes are self-describing: any `attr/`-prefixed feature is a label. CelebA's ±1 flags become `"1"`/`"0"`.
Splits are written as `<dir>/Split-train/*.tfrecord.gz` and `<dir>/Split-eval/*.tfrecord.gz` (TFX's Examples layout),
GZIP-compressed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

IMAGE_KEY = "image"
HEIGHT_KEY = "height"
WIDTH_KEY = "width"
ID_KEY = "id"
SOURCE_KEY = "source"
SHA256_KEY = "sha256"
ATTRIBUTE_PREFIX = "attr/"

SPLITS = ("train", "eval")
COMPRESSION = "GZIP"
FILE_SUFFIX = ".tfrecord.gz"

# The parse spec of the fixed features (attributes are read separately: they vary by source).
FEATURE_SPEC = {
    IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
    HEIGHT_KEY: tf.io.FixedLenFeature([], tf.int64),
    WIDTH_KEY: tf.io.FixedLenFeature([], tf.int64),
    ID_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
    SOURCE_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
    SHA256_KEY: tf.io.FixedLenFeature([], tf.string, default_value=""),
}


def _bytes(values: list[bytes]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))


def _int64(values: list[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def make_example(png: bytes, height: int, width: int, id: str, source: str,
                 attributes: Mapping[str, object] | None = None, sha256: str | None = None) -> tf.train.Example:
    """Build one example in the schema above. `png` must already be the encoded image."""
    feature = {
        IMAGE_KEY: _bytes([png]),
        HEIGHT_KEY: _int64([int(height)]),
        WIDTH_KEY: _int64([int(width)]),
        ID_KEY: _bytes([id.encode()]),
        SOURCE_KEY: _bytes([source.encode()]),
        SHA256_KEY: _bytes([(sha256 or hashlib.sha256(png).hexdigest()).encode()]),
    }
    for name, value in (attributes or {}).items():
        feature[ATTRIBUTE_PREFIX + name] = _bytes([str(value).encode()])
    return tf.train.Example(features=tf.train.Features(feature=feature))


def parse_example_proto(serialized: bytes) -> dict[str, object]:
    """Python-side parse of one serialized example: the fixed fields plus `attributes` (a dict of text labels)."""
    ex = tf.train.Example.FromString(serialized)
    f = ex.features.feature
    out: dict[str, object] = {
        IMAGE_KEY: f[IMAGE_KEY].bytes_list.value[0],
        HEIGHT_KEY: f[HEIGHT_KEY].int64_list.value[0],
        WIDTH_KEY: f[WIDTH_KEY].int64_list.value[0],
        ID_KEY: f[ID_KEY].bytes_list.value[0].decode() if ID_KEY in f else "",
        SOURCE_KEY: f[SOURCE_KEY].bytes_list.value[0].decode() if SOURCE_KEY in f else "",
        SHA256_KEY: f[SHA256_KEY].bytes_list.value[0].decode() if SHA256_KEY in f else "",
    }
    out["attributes"] = {k[len(ATTRIBUTE_PREFIX):]: v.bytes_list.value[0].decode()
                         for k, v in f.items() if k.startswith(ATTRIBUTE_PREFIX) and v.bytes_list.value}
    return out


def parse_image(serialized: tf.Tensor, channels: int = 3) -> tf.Tensor:
    """Graph-side: serialized example → H×W×channels uint8 image."""
    parsed = tf.io.parse_single_example(serialized, {IMAGE_KEY: FEATURE_SPEC[IMAGE_KEY]})
    return tf.io.decode_png(parsed[IMAGE_KEY], channels=channels)


def split_pattern(examples_dir: str, split: str) -> str:
    """The file glob of one split under an Examples directory (TFX layout)."""
    return f"{examples_dir.rstrip('/')}/Split-{split}/*{FILE_SUFFIX}"


def is_tfrecord_path(path: str) -> bool:
    return any(path.endswith(s) for s in (".tfrecord", ".tfrecords", ".tfrecord.gz", ".tfrecords.gz", ".gz"))


def compression_of(path: str) -> str:
    return "GZIP" if path.endswith(".gz") else ""


def read_examples(files: list[str], limit: int | None = None) -> list[dict[str, object]]:
    """Read (up to `limit`) examples from TFRecord files into Python dicts (see `parse_example_proto`)."""
    out: list[dict[str, object]] = []
    for path in files:
        for record in tf.data.TFRecordDataset(path, compression_type=compression_of(path)).as_numpy_iterator():
            out.append(parse_example_proto(record))
            if limit is not None and len(out) >= limit:
                return out
    return out


def images_from_examples(examples: list[dict[str, object]]) -> np.ndarray:
    from dcgan.images import decode_png

    return np.stack([decode_png(e[IMAGE_KEY]) for e in examples])
