"""Differentiable augmentation (DiffAugment, Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training"): the same random colour / translation / cutout transforms are applied to real *and* generated images
before D sees them, in D's update and in G's. Every transform is differentiable in the image, so G's gradient flows
through the augmentation; D never sees an un-augmented image, so it cannot memorise the (small) training set, and G
is not pushed to produce augmented-looking images (the augmentation is applied on both sides).

The transforms follow the authors' TensorFlow code (github.com/mit-han-lab/data-efficient-gans, DiffAugment_tf.py)
on images in [-1, 1], NHWC:

    color        brightness + U(-0.5, 0.5); saturation × U(0, 2) around the pixel's mean; contrast × U(0.5, 1.5)
                 around the image's mean
    translation  shift by up to 1/8 of the side in x and y (integers), zeros shifted in
    cutout       one square of half the side, at a random centre, set to 0

Randomness is stateless (`tf.random.stateless_uniform` seeded by the caller), so a run that resumes at step k draws
exactly what an uninterrupted run would have; each image of a batch draws its own parameters.

    augment = DiffAugment("color,translation,cutout", seed)   # seed: int64 [2] tensor, e.g. (run seed, step)
    x_aug = augment(x, stream=0)                              # streams give independent draws (real, fake, ...)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import tensorflow as tf

from dcgan.config import DIFFAUGMENT_POLICIES as POLICIES
from dcgan.config import parse_policy

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


class Augment(Protocol):
    """What `dcgan.train.dcgan_update` applies to every batch D judges: (images, stream) → images."""

    def __call__(self, x: tf.Tensor, stream: int = 0) -> tf.Tensor: ...


def _sub(seed: tf.Tensor, k: int) -> tf.Tensor:
    """The k-th independent seed derived from `seed` = (run, step): the offset goes to high bits of the step
    component, so it never collides with another step's seed."""
    return seed + tf.constant([0, k << 36], tf.int64)


def _uniform(shape: Sequence, seed: tf.Tensor, dtype: tf.DType, low: float = 0.0, high: float = 1.0) -> tf.Tensor:
    return tf.cast(tf.random.stateless_uniform(shape, seed=seed, minval=low, maxval=high), dtype)


def rand_color(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Brightness, saturation and contrast, each with its own per-image factor."""
    batch = tf.shape(x)[0]
    shape = tf.stack([batch, 1, 1, 1])
    x = x + _uniform(shape, _sub(seed, 1), x.dtype, -0.5, 0.5)
    mean = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - mean) * _uniform(shape, _sub(seed, 2), x.dtype, 0.0, 2.0) + mean
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * _uniform(shape, _sub(seed, 3), x.dtype, 0.5, 1.5) + mean


def rand_translation(x: tf.Tensor, seed: tf.Tensor, ratio: float = TRANSLATION_RATIO) -> tf.Tensor:
    """Shift every image by its own integer (dy, dx) in [-ratio·side, ratio·side]; zeros come in at the edges."""
    batch, height, width = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    shift_h = tf.cast(tf.cast(height, tf.float32) * ratio + 0.5, tf.int32)
    shift_w = tf.cast(tf.cast(width, tf.float32) * ratio + 0.5, tf.int32)
    dy = tf.random.stateless_uniform(tf.stack([batch, 1]), seed=_sub(seed, 4), minval=-shift_h, maxval=shift_h + 1,
                                     dtype=tf.int32)
    dx = tf.random.stateless_uniform(tf.stack([batch, 1]), seed=_sub(seed, 5), minval=-shift_w, maxval=shift_w + 1,
                                     dtype=tf.int32)
    # Pad one zero row/column on each side; source index (clipped into the padding) for every output row/column.
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
    rows = tf.clip_by_value(tf.range(height)[None, :] + dy + 1, 0, height + 1)  # [B, H]
    cols = tf.clip_by_value(tf.range(width)[None, :] + dx + 1, 0, width + 1)  # [B, W]
    x = tf.gather(padded, rows, axis=1, batch_dims=1)  # [B, H, W+2, C]
    return tf.gather(x, cols, axis=2, batch_dims=1)  # [B, H, W, C]


def rand_cutout(x: tf.Tensor, seed: tf.Tensor, ratio: float = CUTOUT_RATIO) -> tf.Tensor:
    """Zero one (ratio·side)² square per image, centred anywhere in the image (clipped at the edges)."""
    batch, height, width = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    size_h = tf.cast(tf.cast(height, tf.float32) * ratio + 0.5, tf.int32)
    size_w = tf.cast(tf.cast(width, tf.float32) * ratio + 0.5, tf.int32)
    cy = tf.random.stateless_uniform(tf.stack([batch, 1, 1]), seed=_sub(seed, 6),
                                     maxval=height + (1 - size_h % 2), dtype=tf.int32)
    cx = tf.random.stateless_uniform(tf.stack([batch, 1, 1]), seed=_sub(seed, 7),
                                     maxval=width + (1 - size_w % 2), dtype=tf.int32)
    top, left = cy - size_h // 2, cx - size_w // 2
    ys = tf.range(height)[None, :, None]
    xs = tf.range(width)[None, None, :]
    inside = (ys >= top) & (ys < top + size_h) & (xs >= left) & (xs < left + size_w)  # [B, H, W]
    return x * tf.cast(~inside, x.dtype)[..., None]


_TRANSFORMS = {"color": rand_color, "translation": rand_translation, "cutout": rand_cutout}


class DiffAugment:
    """The policy's transforms, in the order color → translation → cutout, seeded by `seed` (int64 [2]); identity
    when the policy is empty. Calls with different `stream` numbers draw independently."""

    def __init__(self, policy: str | Sequence[str], seed: tf.Tensor | Sequence[int] = (0, 0)):
        parts = parse_policy(policy) if isinstance(policy, str) else parse_policy(",".join(policy))
        self.policy = tuple(p for p in POLICIES if p in parts)
        self.seed = tf.cast(seed, tf.int64)

    def __bool__(self) -> bool:
        return bool(self.policy)

    def __call__(self, x: tf.Tensor, stream: int = 0) -> tf.Tensor:
        if not self.policy:
            return x
        seed = self.seed + tf.constant([0, (stream + 1) << 44], tf.int64)
        for name in self.policy:
            x = _TRANSFORMS[name](x, seed)
        return x


def identity(x: tf.Tensor, stream: int = 0) -> tf.Tensor:
    """No augmentation (the paper)."""
    return x
