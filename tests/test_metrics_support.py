"""Shared helpers of the metrics and evaluator tests (this module holds no tests).

* `metrics_cache`: one cache directory for the whole session, so the Inception weights are converted once and
  real-image features are reused across modules (set DCGAN_CACHE_DIR to keep them across sessions too).
* `write_examples`: a small Examples directory (Split-train / Split-eval, the project's example schema), written
  deterministically so every module that writes it gets the same bytes (and the same features-cache entries).
* `export_oracle_generator`: a "perfect" generator — a SavedModel with the project's export signatures whose
  images are real held-out images, chosen by z. It passes any realistic FID threshold, as a good model would.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from dcgan import schema

SIZE = 32
NUM_TRAIN = 48
NUM_EVAL = 24


@pytest.fixture(scope="session")
def metrics_cache(tmp_path_factory) -> str:
    """The metrics cache directory of this session ($DCGAN_CACHE_DIR when set, else a session temp dir)."""
    path = os.environ.get("DCGAN_CACHE_DIR") or str(tmp_path_factory.getbasetemp() / "dcgan-cache")
    os.environ["DCGAN_CACHE_DIR"] = path
    return path


def face_images(n: int, seed: int, size: int = SIZE) -> np.ndarray:
    """n synthetic 'faces' (uint8 n×size×size×3): a coloured background and a lighter disc, jittered."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        colour = np.array([190.0, 70.0, 50.0]) + rng.normal(0, 14, 3)
        img = np.ones((size, size, 3)) * colour
        cy, cx = size / 2 + rng.normal(0, 2, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < (size / 4 + rng.normal(0, 1)) ** 2
        img[disc] = np.clip(colour + 50, 0, 255)
        img += rng.normal(0, 4, img.shape)
        out[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


def write_examples(root: str, num_train: int = NUM_TRAIN, num_eval: int = NUM_EVAL) -> str:
    """An Examples directory in the TFX layout with GZIP TFRecords of tf.Example in the project's schema."""
    import tensorflow as tf

    from dcgan.images import encode_png

    for split, images in (("train", face_images(num_train, 0)), ("eval", face_images(num_eval, 1))):
        folder = os.path.join(root, f"Split-{split}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"data-00000-of-00001{schema.FILE_SUFFIX}")
        with tf.io.TFRecordWriter(path, options=tf.io.TFRecordOptions(compression_type="GZIP")) as w:
            for i, image in enumerate(images):
                png = encode_png(image)
                w.write(schema.make_example(png, SIZE, SIZE, f"{split}/{i}", "test").SerializeToString())
    return root


def export_oracle_generator(out_dir: str, images: np.ndarray) -> str:
    """Export a generator whose image for z is images[hash(z) mod N] (in [-1, 1]), with the real export code."""
    import keras
    import tensorflow as tf

    from dcgan.config import ModelConfig
    from dcgan.export import export_generator

    table = tf.constant(images.astype(np.float32) / 127.5 - 1.0)

    class Lookup(keras.layers.Layer):
        def call(self, z):
            index = tf.cast(tf.math.floormod(tf.floor(tf.abs(z[:, 0]) * 1e4), len(images)), tf.int32)
            return tf.gather(table, index)

    z = keras.Input(shape=(100,), name="z")
    model = keras.Model(z, Lookup()(z), name="oracle")
    return export_generator(model, ModelConfig(size=SIZE, ngf=8, ndf=8), out_dir, {"oracle": True}, overwrite=True)
