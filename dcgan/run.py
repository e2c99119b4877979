"""The run directory and the models it holds: `GanModels` (G, D, the EMA copy of G, both optimizers, the step) and
their checkpoint, `is_run_dir`, `load_models`. Everything that reads a training run (export, visualize, metrics, the
studio's tests, the TFX trainer module) uses this module, never the training loop.

    RUN_DIR/config.json          the TrainConfig the run was started with (resume and `load_models` read it)
    RUN_DIR/checkpoints/         tf.train.Checkpoint: G, D, EMA G, both Adam states, step (+ the data iterator)

No process-wide side effects: the models are built under their run's Keras dtype policy (`precision_policy`), and the
global policy is restored afterwards. A caller that wants a global policy sets it itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
import tensorflow as tf

from dcgan import fileio
from dcgan.config import TrainConfig, load_config
from dcgan.errors import RunDirError
from dcgan.model import build_discriminator, build_generator

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


def is_run_dir(path: str) -> bool:
    """True when `path` holds a run: its config.json and checkpoints/ folder."""
    return fileio.exists(fileio.join(path, CONFIG_FILE)) and fileio.isdir(fileio.join(path, CHECKPOINT_DIR))


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """Keras's global dtype policy set to `precision` ("float32", "mixed_float16", "mixed_bfloat16") inside the
    block only: layers built in it keep that policy, and the previous global policy is restored on exit."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class GanModels:
    """G, D, the optional EMA copy of G and both optimizers, built under a strategy scope and the config's precision,
    plus their checkpoint."""

    def __init__(self, config: TrainConfig, strategy: tf.distribute.Strategy | None = None):
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope(), precision_policy(config.precision):
            self.generator = build_generator(config.model, seed=config.seed)
            self.discriminator = build_discriminator(config.model, seed=config.seed)
            self.ema_generator = build_generator(config.model, name="ema_generator") if config.ema_decay else None
            if self.ema_generator is not None:
                for ema_var, var in zip(self.ema_generator.weights, self.generator.weights):
                    ema_var.assign(var)
            self.g_optimizer = self._optimizer(config.learning_rate)
            self.d_optimizer = self._optimizer(config.discriminator_learning_rate)  # TTUR when they differ
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")

    def _optimizer(self, learning_rate: float) -> keras.optimizers.Optimizer:
        opt = keras.optimizers.Adam(learning_rate=learning_rate, beta_1=self.config.beta1)  # paper §4
        if self.config.precision == "mixed_float16":
            opt = keras.optimizers.LossScaleOptimizer(opt)
        return opt

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator used for samples and export: the EMA copy when there is one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def checkpoint(self, optimizers: bool = True, **extra: tf.train.Checkpoint) -> tf.train.Checkpoint:
        parts = dict(generator=self.generator, discriminator=self.discriminator, step=self.step)
        if optimizers:
            parts.update(g_optimizer=self.g_optimizer, d_optimizer=self.d_optimizer)
        if self.ema_generator is not None:
            parts["ema_generator"] = self.ema_generator
        parts.update(extra)
        return tf.train.Checkpoint(**parts)


def load_run_config(run_dir: str) -> TrainConfig:
    """The TrainConfig saved in a run directory."""
    if not is_run_dir(run_dir):
        raise RunDirError(f"{run_dir!r} is not a run directory (no {CONFIG_FILE} and {CHECKPOINT_DIR}/ in it)")
    return load_config(fileio.join(run_dir, CONFIG_FILE))


def load_models(run_dir: str, checkpoint: str | None = None, precision: str | None = None) -> GanModels:
    """Rebuild G/D from a run's config and restore the latest (or the given) checkpoint, without the data iterator.
    `precision` overrides the run's for the models built here (export uses float32: variables are float32 under
    every policy); the global Keras policy is left as it was."""
    config = load_run_config(run_dir)
    if precision:
        config = config.replace(precision=precision)
    models = GanModels(config)
    path = checkpoint or tf.train.latest_checkpoint(fileio.join(run_dir, CHECKPOINT_DIR))
    if not path:
        raise RunDirError(f"{run_dir!r} has no checkpoint yet")
    # Without the optimizers: their structure depends on the precision (loss scaling) and sampling never needs them.
    models.checkpoint(optimizers=False).restore(path).expect_partial()
    return models
