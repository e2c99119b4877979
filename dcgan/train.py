"""The DCGAN training loop: one compiled `tf.function` step, checkpoints with exact resume, TensorBoard, sample grids.

A run directory is self-contained and reproducible:

    RUN_DIR/config.json          the TrainConfig the run was started with (resume reads it)
    RUN_DIR/checkpoints/         tf.train.Checkpoint: G, D, EMA G, both Adam states, step, data-iterator state
    RUN_DIR/logs/                TensorBoard events: losses, D outputs, images/s, sample grids (and FID if enabled)
    RUN_DIR/samples/step_N.png   fixed-z sample grids (z for seeds 0..num_samples-1, see dcgan.latent)
    RUN_DIR/metrics.jsonl        one JSON line per log step
    RUN_DIR/bad_files.log        inputs skipped, with the reason

Randomness is a pure function of (seed, step, replica): z and the flips come from stateless RNG ops, so resuming at
step k replays exactly what an uninterrupted run would have done (the data order comes from the iterator state).
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from dcgan import fileio
from dcgan import images as imlib
from dcgan.config import ConfigError, TrainConfig, load_config, save_config
from dcgan.data import TrainingData, make_training_data
from dcgan.errors import RunDirError
from dcgan.latent import z_from_seeds
from dcgan.model import build_discriminator, build_generator
from dcgan.runtime import configure_tf_threads

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


class TrainHook(Protocol):
    """Called every `every` steps with the trainer; returns scalars to log (e.g. {"fid": 42.0})."""

    every: int

    def __call__(self, trainer: Trainer, step: int) -> dict[str, float]: ...


@dataclass
class TrainResult:
    run_dir: str
    step: int
    d_loss: float
    g_loss: float
    images_per_sec: float
    checkpoint: str
    num_examples: int
    rejected: int


def configure_threads(intra_op: int = 0, inter_op: int = 0) -> None:
    """Set TensorFlow's thread pools (must run before the first op; ignored with a warning afterwards)."""
    if not configure_tf_threads(intra_op, inter_op):
        log.warning("thread settings intra=%d inter=%d not applied: TensorFlow was already initialised",
                    intra_op, inter_op)


def select_strategy(name: str) -> tf.distribute.Strategy:
    """auto: MirroredStrategy over all GPUs when there are several, else the default strategy."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def is_run_dir(path: str) -> bool:
    return fileio.exists(fileio.join(path, CONFIG_FILE)) and fileio.isdir(fileio.join(path, CHECKPOINT_DIR))


class GanModels:
    """G, D, the optional EMA copy of G and both optimizers, built under a strategy scope, plus their checkpoint."""

    def __init__(self, config: TrainConfig, strategy: tf.distribute.Strategy | None = None):
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope():
            self.generator = build_generator(config.model, seed=config.seed)
            self.discriminator = build_discriminator(config.model, seed=config.seed)
            self.ema_generator = build_generator(config.model, name="ema_generator") if config.ema_decay else None
            if self.ema_generator is not None:
                for ema_var, var in zip(self.ema_generator.weights, self.generator.weights):
                    ema_var.assign(var)
            self.g_optimizer = self._optimizer()
            self.d_optimizer = self._optimizer()
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")

    def _optimizer(self) -> keras.optimizers.Optimizer:
        opt = keras.optimizers.Adam(learning_rate=self.config.learning_rate, beta_1=self.config.beta1)  # paper §4
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


def set_precision(precision: str) -> None:
    keras.mixed_precision.set_global_policy(precision)


def load_models(run_dir: str, checkpoint: str | None = None, precision: str | None = None) -> GanModels:
    """Rebuild G/D from a run's config and restore the latest (or the given) checkpoint, without the data iterator.
    `precision` overrides the run's (export uses float32: variables are float32 under every policy)."""
    if not is_run_dir(run_dir):
        raise RunDirError(f"{run_dir!r} is not a run directory (no {CONFIG_FILE} and {CHECKPOINT_DIR}/ in it)")
    config = load_config(fileio.join(run_dir, CONFIG_FILE))
    if precision:
        config = config.replace(precision=precision)
    set_precision(config.precision)
    models = GanModels(config)
    path = checkpoint or tf.train.latest_checkpoint(fileio.join(run_dir, CHECKPOINT_DIR))
    if not path:
        raise RunDirError(f"{run_dir!r} has no checkpoint yet")
    # Without the optimizers: their structure depends on the precision (loss scaling) and sampling never needs them.
    models.checkpoint(optimizers=False).restore(path).expect_partial()
    return models


def _bce(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)[:, 0]


class Trainer:
    """Trains one run directory: `Trainer(config, run_dir).train()` starts a run, `Trainer.resume(run_dir)` goes on."""

    def __init__(self, config: TrainConfig, run_dir: str, *, resume: bool = False, progress: bool = True,
                 hooks: Sequence[TrainHook] = ()):
        self.config = config.validate()
        self.run_dir = run_dir
        self.progress = progress
        self.hooks = list(hooks)
        self._stop_requested = False

        if resume:
            if not is_run_dir(run_dir):
                raise RunDirError(f"cannot resume: {run_dir!r} is not a run directory "
                                  f"(expected {CONFIG_FILE} and {CHECKPOINT_DIR}/)")
        elif is_run_dir(run_dir):
            raise RunDirError(f"{run_dir!r} already holds a run; continue it with --resume {run_dir} "
                              "or choose a new --out")
        fileio.makedirs(run_dir)
        for sub in (CHECKPOINT_DIR, "logs", "samples"):
            fileio.makedirs(fileio.join(run_dir, sub))

        configure_threads(config.intra_op_threads, config.inter_op_threads)
        set_precision(config.precision)
        self.strategy = select_strategy(config.strategy)
        self.data: TrainingData = make_training_data(
            config.data, size=config.model.size, channels=config.model.channels, batch_size=config.batch_size,
            seed=config.seed, crop=config.crop, mode=config.input_mode, memory_limit_mb=config.memory_limit_mb,
            reject_log=fileio.join(run_dir, "bad_files.log"), progress=progress)
        self.models = GanModels(config, self.strategy)

        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise ConfigError(f"batch_size={config.batch_size} must be divisible by the {replicas} replicas of the "
                              f"{type(self.strategy).__name__}")
        # One plain host iterator for every strategy: it is trackable, so its position is checkpointed (tf.data's
        # distributed iterators are not); each global batch is split across replicas inside the step.
        self.iterator = iter(self.data.dataset)
        self.ckpt = self.models.checkpoint(data_iterator=self.iterator)
        self.manager = tf.train.CheckpointManager(self.ckpt, fileio.join(run_dir, CHECKPOINT_DIR),
                                                  max_to_keep=config.keep_checkpoints)
        if resume:
            latest = self.manager.latest_checkpoint
            if latest:
                self.ckpt.restore(latest).assert_existing_objects_matched()
                log.info("resumed %s at step %d", latest, int(self.models.step.numpy()))
        save_config(config, fileio.join(run_dir, CONFIG_FILE))

        self.writer = tf.summary.create_file_writer(fileio.join(run_dir, "logs"))
        self.sample_z = z_from_seeds(np.arange(config.num_samples), config.model.z_dim)
        self._train_step = self._build_step()
        if config.fid_every:
            from dcgan.metrics.hook import FidHook  # the metrics package; heavy (Inception), so only when asked

            self.hooks.append(FidHook(self, every=config.fid_every, num_samples=config.fid_samples))

    # -- construction helpers ---------------------------------------------------------------------------------------
    @classmethod
    def resume(cls, run_dir: str, steps: int | None = None, **kwargs) -> Trainer:
        """Continue a run from its last checkpoint; `steps` (the new total) may extend it."""
        if not is_run_dir(run_dir):
            raise RunDirError(f"cannot resume: {run_dir!r} is not a run directory "
                              f"(expected {CONFIG_FILE} and {CHECKPOINT_DIR}/)")
        try:
            config = load_config(fileio.join(run_dir, CONFIG_FILE))
        except (ValueError, TypeError, ConfigError) as e:
            raise RunDirError(f"cannot resume: {run_dir}/{CONFIG_FILE} is not a valid run config: {e}") from e
        if steps is not None:
            config = config.replace(steps=steps)
        return cls(config, run_dir, resume=True, **kwargs)

    def _build_step(self) -> Callable[[], dict[str, tf.Tensor]]:
        cfg = self.config
        m = self.models
        G, D = m.generator, m.discriminator
        global_batch = cfg.batch_size
        real_label = 1.0 - cfg.label_smoothing  # one-sided label smoothing (Salimans et al. 2016); 0 = paper
        z_dim = cfg.model.z_dim
        lookup = self.data.lookup
        mixed16 = cfg.precision == "mixed_float16"

        def scaled(opt, loss):
            return opt.scale_loss(loss) if mixed16 else loss

        def step_fn(element: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
            real_u8 = lookup(element)
            batch = tf.shape(real_u8)[0]
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            seed = tf.stack([tf.cast(cfg.seed, tf.int64) * 1024 + tf.cast(replica, tf.int64), step])
            real = tf.cast(real_u8, tf.float32) / 127.5 - 1.0
            if cfg.random_flip:
                flip = tf.random.stateless_uniform([batch, 1, 1, 1], seed=seed + [0, 1 << 40]) < 0.5
                real = tf.where(flip, tf.reverse(real, axis=[2]), real)
            z = tf.random.stateless_normal([batch, z_dim], seed=seed)

            with tf.GradientTape() as g_tape:
                fake = G(z, training=True)  # one G forward, reused by both updates
                # (1) D step: maximise log D(x) + log(1 − D(G(z))).
                with tf.GradientTape() as d_tape:
                    real_logits = D(real, training=True)
                    fake_logits = D(tf.stop_gradient(fake), training=True)
                    d_loss = tf.nn.compute_average_loss(
                        _bce(tf.fill([batch, 1], real_label), real_logits) + _bce(tf.zeros([batch, 1]), fake_logits),
                        global_batch_size=global_batch)
                    d_objective = scaled(m.d_optimizer, d_loss)  # loss scaling (mixed_float16) inside the tape
                d_grads = d_tape.gradient(d_objective, D.trainable_variables)
                m.d_optimizer.apply_gradients(list(zip(d_grads, D.trainable_variables)))
                # (2) G step against the updated D, non-saturating: maximise log D(G(z)).
                gen_logits = D(fake, training=True)
                g_loss = tf.nn.compute_average_loss(_bce(tf.ones([batch, 1]), gen_logits),
                                                    global_batch_size=global_batch)
                g_objective = scaled(m.g_optimizer, g_loss)
            g_grads = g_tape.gradient(g_objective, G.trainable_variables)
            m.g_optimizer.apply_gradients(list(zip(g_grads, G.trainable_variables)))  # LossScaleOptimizer unscales
            return {
                "d_loss": d_loss,
                "g_loss": g_loss,
                "d_real": tf.nn.compute_average_loss(tf.sigmoid(real_logits[:, 0]), global_batch_size=global_batch),
                "d_fake": tf.nn.compute_average_loss(tf.sigmoid(fake_logits[:, 0]), global_batch_size=global_batch),
            }

        ema = m.ema_generator
        decay = cfg.ema_decay
        strategy = self.strategy
        iterator = self.iterator

        replicas = strategy.num_replicas_in_sync
        per_replica_batch = global_batch // replicas

        def split(element: tf.Tensor):
            if replicas == 1:
                return element
            return strategy.experimental_distribute_values_from_function(
                lambda ctx: element[ctx.replica_id_in_sync_group * per_replica_batch:
                                    (ctx.replica_id_in_sync_group + 1) * per_replica_batch])

        @tf.function
        def train_step() -> dict[str, tf.Tensor]:
            element = next(iterator)
            per_replica = strategy.run(step_fn, args=(split(element), m.step.read_value()))
            out = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}
            if ema is not None:
                # Warm-up as in tf.train.ExponentialMovingAverage(num_updates=step): early on the average follows G
                # closely instead of dragging in the random initialisation.
                stepf = tf.cast(m.step, tf.float32)
                d = tf.minimum(decay, (1.0 + stepf) / (10.0 + stepf))
                for ema_var, var in zip(ema.trainable_variables, G.trainable_variables):
                    ema_var.assign(d * ema_var + (1.0 - d) * var)
                for ema_var, var in zip(ema.non_trainable_variables, G.non_trainable_variables):
                    ema_var.assign(var)  # BN running statistics
            m.step.assign_add(1)
            return out

        return train_step

    # -- side jobs ----------------------------------------------------------------------------------------------------
    def sample_grid(self) -> np.ndarray:
        images = self.models.sampling_generator(self.sample_z, training=False)
        return imlib.make_grid(np.asarray(images))

    def _write_samples(self, step: int) -> str:
        grid = self.sample_grid()
        path = imlib.save_image(grid, fileio.join(self.run_dir, "samples", f"step_{step:07d}.png"))
        with self.writer.as_default(step=step):
            tf.summary.image("samples", grid[None], max_outputs=1)
        return path

    def _log(self, step: int, values: dict[str, float]) -> None:
        log.info("step %d/%d %s", step, self.config.steps, " ".join(f"{k}={v:.4g}" for k, v in values.items()))
        with self.writer.as_default(step=step):
            for k, v in values.items():
                tf.summary.scalar(k, v)
        fileio.append_text(fileio.join(self.run_dir, "metrics.jsonl"),
                           json.dumps({"step": step, **{k: round(float(v), 6) for k, v in values.items()},
                                       "time": round(time.time(), 3)}) + "\n")

    def _save(self, step: int) -> str:
        path = self.manager.save(checkpoint_number=step)
        log.info("checkpoint %s", path)
        return path

    def request_stop(self, *_args) -> None:
        """Finish the current step, checkpoint and return (wired to SIGINT/SIGTERM by `train`)."""
        self._stop_requested = True

    # -- the loop -----------------------------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        cfg = self.config
        step = int(self.models.step.numpy())
        start_step = step
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in previous:
            try:
                signal.signal(s, self.request_stop)
            except ValueError:  # not the main thread
                pass
        values = {"d_loss": float("nan"), "g_loss": float("nan")}
        ips = 0.0
        last_path = self.manager.latest_checkpoint or ""
        bar = tqdm(total=cfg.steps, initial=step, desc="training", unit="step", disable=not self.progress,
                   dynamic_ncols=True)
        t_window, n_window = time.perf_counter(), 0
        try:
            if step == 0:
                self._write_samples(0)
            while step < cfg.steps and not self._stop_requested:
                out = self._train_step()
                step += 1
                n_window += 1
                if step % cfg.log_every == 0 or step == cfg.steps or step == start_step + 1:
                    values = {k: float(v) for k, v in out.items()}
                    elapsed = time.perf_counter() - t_window
                    ips = n_window * cfg.batch_size / max(elapsed, 1e-9)
                    t_window, n_window = time.perf_counter(), 0
                    self._log(step, {**values, "images_per_sec": ips})
                    bar.set_postfix(d=f"{values['d_loss']:.3f}", g=f"{values['g_loss']:.3f}", img_s=f"{ips:.0f}")
                bar.update(1)
                if step % cfg.sample_every == 0:
                    self._write_samples(step)
                for hook in self.hooks:
                    if hook.every and step % hook.every == 0:
                        self._log(step, hook(self, step))
                if step % cfg.checkpoint_every == 0:
                    last_path = self._save(step)
            if step > start_step and step % cfg.sample_every != 0:
                self._write_samples(step)
            if not (self.manager.latest_checkpoint or "").endswith(f"-{step}"):
                last_path = self._save(step)
        finally:
            bar.close()
            self.writer.flush()
            for s, handler in previous.items():
                try:
                    signal.signal(s, handler)
                except (ValueError, TypeError):
                    pass
        return TrainResult(self.run_dir, step, values["d_loss"], values["g_loss"], ips, last_path,
                           self.data.num_examples, len(self.data.rejected))
