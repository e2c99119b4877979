"""The example schema of the project's TFRecords — the contract between ingest (writer) and trainer/evaluator (readers).

Version 2 (`schema_version` = 2; records without it are version 1, which had the first table's features only).
One `tf.train.Example` per face image in the `train` and `eval` splits:

| feature            | type        | meaning                                                                      |
|--------------------|-------------|------------------------------------------------------------------------------|
| `image`            | bytes       | PNG, H×W×3 uint8 RGB (H = W = the ingest size)                               |
| `height`, `width`  | int64       | the PNG's size                                                               |
| `id`               | bytes       | stable identifier: the source-relative path, zip member name or avatar index |
| `source`           | bytes       | where it came from: folder path, zip path, or `avatars:N:SEED`              |
| `sha256`           | bytes       | hex SHA-256 of the encoded PNG (dedup key, split key)                        |
| `attr/<name>`      | bytes       | one optional attribute label per feature, as text (e.g. `attr/hair_color`)   |

Added by version 2 (optional for readers; measured by `dcgan.quality` on the output crop and `dcgan.faces`):

| feature                          | type  | meaning                                                                |
|----------------------------------|-------|------------------------------------------------------------------------|
| `schema_version`                 | int64 | 2 (absent = 1)                                                         |
| `quality/brightness`             | float | mean luma (Rec. 601 Y) / 255, in [0, 1]                                |
| `quality/contrast`               | float | standard deviation of that luma / 255                                  |
| `quality/saturation`             | float | mean HSV saturation, in [0, 1]                                         |
| `quality/sharpness`              | float | variance of the Laplacian (ksize 1) of the luma, in 0..255 units       |
| `quality/colour`                 | bytes | `colour` or `greyscale` (saturation < 0.05)                            |
| `quality/exposure`               | bytes | `dark` (brightness < 0.25), `bright` (brightness > 0.85) or `normal`   |
| `source/height`, `source/width`  | int64 | size of the decoded source image (avatars: the rendered size)          |
| `face/confidence`                | float | align mode only: the detector's (MTCNN) score of the chosen face       |
| `face/size`                      | float | align mode only: the face box's longer side / the source's shorter side|
| `face/roll`                      | float | align mode only: eye line angle in degrees (0 level, + clockwise)      |
| `face/margin`                    | float | align mode only: the crop's margin setting (fraction per side)         |

A third split, `inputs`, holds one small example per listed input item (sorted by id, no image): what became of it.

| feature                          | type  | meaning                                                                |
|----------------------------------|-------|------------------------------------------------------------------------|
| `id`                             | bytes | the item's id (the train/eval example's id when accepted)              |
| `ingest/outcome`                 | bytes | `accepted`, or the reject reason (`no_face`, `corrupt`, `too_large`...)|
| `source/height`, `source/width`  | int64 | when the item could be decoded                                         |
| `face/confidence`                | float | align mode, when a face was chosen (accepted or `face_too_small`)      |

Duplicates are decided when the shards are written, after this split's rows are made: they count as `accepted`
here (the ingest report lists them as rejects with reason `duplicate`).

Attributes are self-describing: any `attr/`-prefixed feature is a label. CelebA's ±1 flags become `"1"`/`"0"`.
Splits are written as `<dir>/Split-<split>/*.tfrecord.gz` (TFX's Examples layout), GZIP-compressed. `SPLITS`
(train, eval) are what training and evaluation read; `ALL_SPLITS` adds `inputs` (the Examples artifact's split_names).
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

# -- version 2 ------------------------------------------------------------------------------------------------------
SCHEMA_VERSION_KEY = "schema_version"
SCHEMA_VERSION = 2
QUALITY_PREFIX = "quality/"  # + a name of dcgan.quality.image_features
BRIGHTNESS_KEY = "quality/brightness"
CONTRAST_KEY = "quality/contrast"
SATURATION_KEY = "quality/saturation"
SHARPNESS_KEY = "quality/sharpness"
COLOUR_KEY = "quality/colour"
EXPOSURE_KEY = "quality/exposure"
SOURCE_HEIGHT_KEY = "source/height"
SOURCE_WIDTH_KEY = "source/width"
FACE_PREFIX = "face/"  # + a name of dcgan.faces.face_features
FACE_CONFIDENCE_KEY = "face/confidence"
FACE_SIZE_KEY = "face/size"
FACE_ROLL_KEY = "face/roll"
FACE_MARGIN_KEY = "face/margin"
QUALITY_KEYS = (BRIGHTNESS_KEY, CONTRAST_KEY, SATURATION_KEY, SHARPNESS_KEY, COLOUR_KEY, EXPOSURE_KEY)
FACE_KEYS = (FACE_CONFIDENCE_KEY, FACE_SIZE_KEY, FACE_ROLL_KEY, FACE_MARGIN_KEY)

# The inputs split: one row per listed input item.
OUTCOME_KEY = "ingest/outcome"
ACCEPTED = "accepted"  # else the reject reason (dcgan.images.REASONS, dcgan.faces.REASONS, ingest's own)

SPLITS = ("train", "eval")  # what training and evaluation read
INPUTS_SPLIT = "inputs"
ALL_SPLITS = (*SPLITS, INPUTS_SPLIT)  # what ingest writes (the Examples artifact's split_names)
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


def _float(values: list[float]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def _typed(name: str, value: object) -> tf.train.Feature:
    """One scalar as its feature type: float → float_list, int → int64_list, str (or bytes) → bytes_list."""
    if isinstance(value, (bool, int, np.integer)):
        return _int64([int(value)])
    if isinstance(value, (float, np.floating)):
        return _float([float(value)])
    if isinstance(value, str):
        return _bytes([value.encode()])
    if isinstance(value, bytes):
        return _bytes([value])
    raise TypeError(f"feature {name!r}: {type(value).__name__} is not a float, int or str")


def make_example(png: bytes, height: int, width: int, id: str, source: str,
                 attributes: Mapping[str, object] | None = None, sha256: str | None = None,
                 features: Mapping[str, object] | None = None) -> tf.train.Example:
    """Build one train/eval example in the schema above (`schema_version` 2). `png` must already be the encoded
    image; `features` are the version-2 features by key (float, int or str values; see the module's table)."""
    feature = {
        IMAGE_KEY: _bytes([png]),
        HEIGHT_KEY: _int64([int(height)]),
        WIDTH_KEY: _int64([int(width)]),
        ID_KEY: _bytes([id.encode()]),
        SOURCE_KEY: _bytes([source.encode()]),
        SHA256_KEY: _bytes([(sha256 or hashlib.sha256(png).hexdigest()).encode()]),
        SCHEMA_VERSION_KEY: _int64([SCHEMA_VERSION]),
    }
    for name, value in (attributes or {}).items():
        feature[ATTRIBUTE_PREFIX + name] = _bytes([str(value).encode()])
    for name, value in (features or {}).items():
        if name in feature or name.startswith(ATTRIBUTE_PREFIX):
            raise ValueError(f"feature {name!r} would overwrite a fixed feature or an attribute")
        feature[name] = _typed(name, value)
    return tf.train.Example(features=tf.train.Features(feature=feature))


def make_inputs_example(id: str, outcome: str, features: Mapping[str, object] | None = None) -> tf.train.Example:
    """Build one row of the `inputs` split: the item's id, its outcome (`accepted` or a reject reason) and
    `features` (`source/height`, `source/width`, `face/confidence` where known)."""
    feature = {ID_KEY: _bytes([id.encode()]), OUTCOME_KEY: _bytes([outcome.encode()])}
    for name, value in (features or {}).items():
        if name in feature:
            raise ValueError(f"feature {name!r} would overwrite {name!r}")
        feature[name] = _typed(name, value)
    return tf.train.Example(features=tf.train.Features(feature=feature))


_FIXED_KEYS = {IMAGE_KEY, HEIGHT_KEY, WIDTH_KEY, ID_KEY, SOURCE_KEY, SHA256_KEY, SCHEMA_VERSION_KEY}


def _value(feature: tf.train.Feature) -> object:
    kind = feature.WhichOneof("kind")
    if kind is None:
        return None
    values = list(getattr(feature, kind).value)
    if kind == "bytes_list":
        values = [v.decode(errors="replace") for v in values]
    return values[0] if len(values) == 1 else values


def parse_example_proto(serialized: bytes) -> dict[str, object]:
    """Python-side parse of one serialized example of any version and split: the fixed fields (`image`, `height`
    and `width` only when present: the inputs split has none), `schema_version` (1 when absent), `attributes` (a
    dict of text labels) and `features` (every other feature by key: the version-2 ones, `ingest/outcome`; float,
    int or str; {} for a version-1 record)."""
    ex = tf.train.Example.FromString(serialized)
    f = ex.features.feature
    out: dict[str, object] = {}
    if IMAGE_KEY in f:
        out[IMAGE_KEY] = f[IMAGE_KEY].bytes_list.value[0]
    for key in (HEIGHT_KEY, WIDTH_KEY):
        if key in f:
            out[key] = f[key].int64_list.value[0]
    for key in (ID_KEY, SOURCE_KEY, SHA256_KEY):
        out[key] = f[key].bytes_list.value[0].decode() if key in f else ""
    out[SCHEMA_VERSION_KEY] = f[SCHEMA_VERSION_KEY].int64_list.value[0] if SCHEMA_VERSION_KEY in f else 1
    out["attributes"] = {k[len(ATTRIBUTE_PREFIX):]: v.bytes_list.value[0].decode()
                         for k, v in f.items() if k.startswith(ATTRIBUTE_PREFIX) and v.bytes_list.value}
    out["features"] = {k: _value(v) for k, v in sorted(f.items())
                       if k not in _FIXED_KEYS and not k.startswith(ATTRIBUTE_PREFIX)}
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
