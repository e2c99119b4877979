"""The DCGAN generator and discriminator of Radford, Metz & Chintala 2015 ("Unsupervised Representation Learning with
Deep Convolutional Generative Adversarial Networks", arXiv:1511.06434), as Keras functional models.

The paper's architecture guidelines, each visible below:
  * no pooling: strided convolutions in D, fractional-strided (transposed) convolutions in G;
  * batch norm in both networks, except G's output layer and D's input layer;
  * no fully connected hidden layers (G's first layer is the "project and reshape" matmul, D's last is flattened
    into a single logit);
  * ReLU in G with tanh on the output; LeakyReLU (slope 0.2) in D;
  * all weights initialised from N(0, 0.02).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from dcgan.config import ModelConfig

# BN as in the reference implementations (pytorch/examples, DCGAN-tensorflow): running averages with momentum 0.9
# (PyTorch's 0.1), epsilon 1e-5.
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5


class _Seeds:
    """Deterministic per-layer initialiser seeds derived from one run seed (None = fresh randomness)."""

    def __init__(self, seed: int | None, offset: int):
        self._next = None if seed is None else seed * 1000 + offset

    def __call__(self) -> int | None:
        if self._next is None:
            return None
        self._next += 1
        return self._next


def _weight_init(seeds: _Seeds) -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02, seed=seeds())  # paper §4


@keras.saving.register_keras_serializable(package="dcgan")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras BatchNormalization computed by TensorFlow's fused kernel (FusedBatchNormV3: statistics and normalisation
    in one pass, one fused gradient op) for 4-D NHWC inputs; other inputs take Keras's own path.

    Keras 3 builds BN from separate moments/normalize ops, which dominate a DCGAN step on CPU; the fused kernel gives
    the same normalisation. As in PyTorch and the fused Keras 2 layer, the running variance tracks the unbiased batch
    variance. Variables and their names are those of BatchNormalization, so checkpoints are interchangeable.
    """

    def call(self, inputs, training=None, mask=None):
        nhwc = len(inputs.shape) == 4 and self.axis in (3, -1)
        if mask is not None or not nhwc or keras.backend.backend() != "tensorflow":
            return super().call(inputs, training=training, mask=mask)
        x = tf.convert_to_tensor(inputs)
        if x.dtype not in (tf.float16, tf.bfloat16, tf.float32):
            x = tf.cast(x, tf.float32)
        gamma, beta = tf.convert_to_tensor(self.gamma), tf.convert_to_tensor(self.beta)
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, mean=tf.convert_to_tensor(self.moving_mean),
                variance=tf.convert_to_tensor(self.moving_variance), epsilon=self.epsilon, data_format="NHWC",
                is_training=False)
        return tf.cast(y, self.compute_dtype)


def _batch_norm(name: str, seeds: _Seeds) -> layers.BatchNormalization:
    # γ ~ N(1, 0.02), β = 0: the initialisation of the paper's reference code (and pytorch/examples `weights_init`).
    return FusedBatchNormalization(
        momentum=_BN_MOMENTUM,
        epsilon=_BN_EPSILON,
        gamma_initializer=keras.initializers.RandomNormal(mean=1.0, stddev=0.02, seed=seeds()),
        name=name,
    )


def build_generator(config: ModelConfig, name: str = "generator", seed: int | None = None) -> keras.Model:
    """G: z → 4×4×base_width → (fractional-strided conv, BN, ReLU)* → fractional-strided conv → tanh image."""
    config.validate()
    seeds = _Seeds(seed, 0)
    k = config.kernel_size
    width = config.base_width

    z = keras.Input(shape=(config.z_dim,), name="z")
    # "Project and reshape": a matmul of z to a 4×4×base_width map. Bias-free: BN follows.
    x = layers.Dense(4 * 4 * width, use_bias=False, kernel_initializer=_weight_init(seeds), name="project")(z)
    x = layers.Reshape((4, 4, width), name="reshape")(x)
    x = _batch_norm("project_bn", seeds)(x)
    x = layers.ReLU(name="project_relu")(x)

    for i in range(1, config.num_upsamplings):
        width //= 2
        x = layers.Conv2DTranspose(width, k, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=_weight_init(seeds), name=f"deconv{i}")(x)
        x = _batch_norm(f"deconv{i}_bn", seeds)(x)
        x = layers.ReLU(name=f"deconv{i}_relu")(x)

    # Output layer: no BN, tanh. Kept in float32 under mixed precision.
    x = layers.Conv2DTranspose(config.channels, k, strides=2, padding="same", use_bias=True,
                               kernel_initializer=_weight_init(seeds), name="to_image")(x)
    image = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(z, image, name=name)


def build_discriminator(config: ModelConfig, name: str = "discriminator", seed: int | None = None) -> keras.Model:
    """D: image → strided conv, LeakyReLU → (strided conv, BN, LeakyReLU)* → flatten → one logit."""
    config.validate()
    seeds = _Seeds(seed, 500)
    k = config.kernel_size
    width = config.ndf

    image = keras.Input(shape=(config.size, config.size, config.channels), name="image")
    # Input layer: no BN (paper §3).
    x = layers.Conv2D(width, k, strides=2, padding="same", use_bias=False,
                      kernel_initializer=_weight_init(seeds), name="conv0")(image)
    x = layers.LeakyReLU(negative_slope=0.2, name="conv0_lrelu")(x)

    for i in range(1, config.num_upsamplings):
        width *= 2
        x = layers.Conv2D(width, k, strides=2, padding="same", use_bias=False,
                          kernel_initializer=_weight_init(seeds), name=f"conv{i}")(x)
        x = _batch_norm(f"conv{i}_bn", seeds)(x)
        x = layers.LeakyReLU(negative_slope=0.2, name=f"conv{i}_lrelu")(x)

    # "The last convolution layer is flattened and then fed into a single sigmoid output" (§3); the sigmoid lives
    # in the loss (logits are numerically safer).
    x = layers.Flatten(name="flatten")(x)
    logit = layers.Dense(1, kernel_initializer=_weight_init(seeds), dtype="float32", name="logit")(x)
    return keras.Model(image, logit, name=name)


def parameter_counts(config: ModelConfig) -> dict[str, int]:
    """Closed-form trainable parameter counts of G and D (what `build_*(...).count_params()` reports for trainable
    weights). BN contributes γ and β per channel; its moving statistics are not trainable."""
    k, n, c, z = config.kernel_size, config.num_upsamplings, config.channels, config.z_dim
    widths_g = [config.base_width // 2**i for i in range(n)]  # 4×4 ... size/2
    g = z * 16 * widths_g[0] + 2 * widths_g[0]
    for w_in, w_out in zip(widths_g[:-1], widths_g[1:]):
        g += k * k * w_in * w_out + 2 * w_out
    g += k * k * widths_g[-1] * c + c
    widths_d = [config.ndf * 2**i for i in range(n)]  # size/2 ... 4×4
    d = k * k * c * widths_d[0]
    for w_in, w_out in zip(widths_d[:-1], widths_d[1:]):
        d += k * k * w_in * w_out + 2 * w_out
    d += 16 * widths_d[-1] + 1
    return {"generator": g, "discriminator": d}
