"""Projection ("bring your own face"): find the z whose face looks like a given image — GAN inversion by optimisation.

The graph side (`project_graph`) runs inside the exported SavedModel's `project` signature, so TF Serving and
`dcgan serve` answer it with no training code: for each image, `candidates` random z are scored, the best
`restarts` of them descend `steps` Adam steps on

    loss(z) = mean (G(z) − x)²                                        pixel term, images in [-1, 1]
            + feature_weight · mean_l  mean (D_l(G(z)) − D_l(x))² / mean D_l(x)²   discriminator features (relative)
            + prior_weight · mean z²                                  keeps z near the N(0, 1) prior (sliders work)

and the restart with the lowest loss is kept (Zhu et al. 2016 "Generative Visual Manipulation on the Natural Image
Manifold" and Creswell & Bharath 2018 optimise z the same way; D's intermediate features as the perceptual term is
the "feature matching" of Salimans et al. 2016). Everything is a bounded `tf.while_loop` with fixed trip count, so one
request costs a known amount of work; the settings are fixed at export (`ProjectionConfig`, recorded in dcgan.json).

The host side (`crop_for_projection`) turns uploaded bytes into the model-sized RGB crop: photos through the ingest's
face aligner (dcgan.faces, MTCNN + 5-landmark similarity warp), already-cropped images (avatars, small squares)
centre-cropped and resized; a photo without a face raises `NoFaceFound` (callers offer centre-cropping instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from dcgan import images as imlib
from dcgan.errors import DcganError

MAX_PROJECT_BATCH = 16  # images per `project` request: each costs candidates + restarts × steps G/D passes

CROP_AUTO = "auto"      # small squares are taken as already cropped, everything else goes through the aligner
CROP_ALIGN = "align"    # always detect + align (photos)
CROP_CENTER = "center"  # never detect: the largest central square, resized
CROP_MODES = (CROP_AUTO, CROP_ALIGN, CROP_CENTER)


@dataclass(frozen=True)
class ProjectionConfig:
    """The `project` signature's fixed settings (chosen at export, recorded in assets.extra/dcgan.json).

    candidates: random z scored per image before any descent (seeded: the same image gives the same answer).
    restarts: the best `restarts` candidates each descend; the lowest final loss is kept.
    steps: Adam steps on z per restart.
    learning_rate: Adam's step size on z (betas 0.9/0.999).
    feature_weight: weight of the discriminator-feature term (0: pixels only; always 0 without a discriminator).
    prior_weight: weight of mean z² (pulls z towards the prior's typical shell).
    seed: seed of the candidates.
    """

    candidates: int = 64
    restarts: int = 2
    steps: int = 120
    learning_rate: float = 0.08
    feature_weight: float = 0.5
    prior_weight: float = 0.002
    seed: int = 0

    def validate(self) -> ProjectionConfig:
        for name in ("candidates", "restarts", "steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1 or value > 4096:
                raise ValueError(f"projection {name}={value!r} must be an integer in 1..4096")
        if self.restarts > self.candidates:
            raise ValueError(f"projection restarts={self.restarts} must not exceed candidates={self.candidates}")
        for name in ("learning_rate", "feature_weight", "prior_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"projection {name}={value!r} must be a finite number >= 0")
        if self.learning_rate <= 0:
            raise ValueError(f"projection learning_rate={self.learning_rate} must be > 0")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


# -- graph side (runs inside the SavedModel) ------------------------------------------------------------------------
def feature_layer_names(num_layers: int) -> list[str]:
    """The discriminator layers whose outputs are the feature term: every conv block's LeakyReLU (dcgan.model)."""
    return [f"conv{i}_lrelu" for i in range(num_layers)]


def build_feature_model(discriminator, num_layers: int):
    """A Keras model sharing D's layers and variables: image → [the LeakyReLU output of every conv block]."""
    import keras

    outputs = [discriminator.get_layer(name).output for name in feature_layer_names(num_layers)]
    return keras.Model(discriminator.inputs, outputs, name="discriminator_features")


def project_graph(generate, features, x, z_dim: int, config: ProjectionConfig) -> dict:
    """Graph-side projection of images `x` [N, H, W, C] (float32 in [-1, 1]).

    `generate(z)` → images; `features(images)` → list of feature maps, or None (pixel term only).
    Returns {"z": [N, z_dim], "images": G(z), "distance": per-image pixel MSE [N], "loss": the objective [N]}.
    """
    import tensorflow as tf

    n = tf.shape(x)[0]
    use_features = features is not None and config.feature_weight > 0
    target_features = [tf.stop_gradient(f) for f in features(x)] if use_features else []
    target_energy = [tf.reduce_mean(tf.square(f), axis=[1, 2, 3]) + 1e-6 for f in target_features]

    def losses(z: tf.Tensor, reps: int) -> tf.Tensor:
        """Per-row objective of z [reps·N, z_dim] (row r·N + i is a try for image i)."""
        images = generate(z)
        tiled = tf.tile(x, [reps, 1, 1, 1])
        loss = tf.reduce_mean(tf.square(images - tiled), axis=[1, 2, 3])
        if use_features:
            terms = [tf.reduce_mean(tf.square(f - tf.tile(t, [reps, 1, 1, 1])), axis=[1, 2, 3]) / tf.tile(e, [reps])
                     for f, t, e in zip(features(images), target_features, target_energy)]
            loss += config.feature_weight * tf.add_n(terms) / len(terms)
        return loss + config.prior_weight * tf.reduce_mean(tf.square(z), axis=1)

    # 1. candidates: the same seeded random z for every image (row c·N + i = candidate c for image i).
    k, r = config.candidates, config.restarts
    pool = tf.random.stateless_normal([k, z_dim], seed=[config.seed, 1])
    z_all = tf.reshape(tf.tile(pool[:, None, :], [1, n, 1]), [k * n, z_dim])
    scores = tf.transpose(tf.reshape(losses(z_all, k), [k, n]))          # [N, K]
    best = tf.math.top_k(-scores, k=r).indices                            # [N, R]
    z0 = tf.reshape(tf.transpose(tf.gather(pool, best), [1, 0, 2]), [r * n, z_dim])  # row j·N + i

    # 2. Adam on z, a bounded loop (trip count fixed at export).
    beta1, beta2, eps, lr = 0.9, 0.999, 1e-8, config.learning_rate

    def body(step, z, m, v):
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss = tf.reduce_sum(losses(z, r))  # rows are independent: the sum's gradient is each row's own
        g = tape.gradient(loss, z)
        m = beta1 * m + (1.0 - beta1) * g
        v = beta2 * v + (1.0 - beta2) * tf.square(g)
        t = tf.cast(step + 1, tf.float32)
        update = lr * (m / (1.0 - beta1 ** t)) / (tf.sqrt(v / (1.0 - beta2 ** t)) + eps)
        return step + 1, z - update, m, v

    zeros = tf.zeros_like(z0)
    _, z, _, _ = tf.while_loop(lambda step, *_: step < config.steps, body, (tf.constant(0), z0, zeros, zeros),
                               maximum_iterations=config.steps)

    # 3. keep each image's best restart.
    final = tf.reshape(losses(z, r), [r, n])
    choice = tf.argmin(final, axis=0, output_type=tf.int32)               # [N]
    rows = choice * n + tf.range(n)
    z_best = tf.gather(z, rows)
    images = generate(z_best)
    distance = tf.reduce_mean(tf.square(images - x), axis=[1, 2, 3])
    return {"z": z_best, "images": images, "distance": distance, "loss": tf.gather(tf.reshape(final, [-1]), rows)}


# -- host side: uploaded bytes → the model-sized crop ------------------------------------------------------------------
class NoFaceFound(DcganError, ValueError):
    """Face alignment found no usable face; the message says so and how to proceed (centre-crop)."""


def is_already_cropped(image: np.ndarray, size: int) -> bool:
    """A square-ish image no larger than max(128, 4·size) px is taken as an already-cropped face (an avatar, a crop
    from a dataset): it is centre-cropped and resized, not sent through the detector."""
    h, w = image.shape[:2]
    return max(h, w) <= max(128, 4 * size) and abs(h - w) <= 0.1 * max(h, w)


def crop_for_projection(data: bytes, size: int, mode: str = CROP_AUTO, *,
                        max_pixels: int = 40_000_000) -> tuple[np.ndarray, str]:
    """Uploaded image bytes → (size×size×3 uint8 crop, how it was made: "aligned" | "center-crop").

    Raises dcgan.images.ImageRejected (not an image, too large, ...) or NoFaceFound (align/auto mode, a photo with
    no face: retry with mode "center")."""
    if mode not in CROP_MODES:
        raise ValueError(f"crop mode {mode!r} is not one of {CROP_MODES}")
    image = imlib.decode_image(data, max_pixels=max_pixels)
    return crop_decoded(image, size, mode)


def crop_decoded(image: np.ndarray, size: int, mode: str = CROP_AUTO) -> tuple[np.ndarray, str]:
    """`crop_for_projection` for an already decoded H×W×3 uint8 image."""
    if mode == CROP_CENTER or (mode == CROP_AUTO and is_already_cropped(image, size)):
        return imlib.resize(imlib.center_crop(image), size), "center-crop"
    from dcgan import faces

    config = faces.CropConfig(mode=faces.ALIGN, size=size, min_face_size=0)
    try:
        return faces.crop_image(image, config), "aligned"
    except imlib.ImageRejected as e:
        h, w = image.shape[:2]
        raise NoFaceFound(f"no face found in the {w}x{h} image ({e.detail or e.reason}); if it is already a face "
                          "crop (an avatar, a drawing), centre-crop it instead") from None


def to_model_range(crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """uint8 crops [N, H, W, 3] → float32 in [-1, 1], the `project` signature's input."""
    return np.asarray(crops, np.float32) / 127.5 - 1.0
