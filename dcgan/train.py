"""The DCGAN training loop: the GAN update (`dcgan_update`, one function that reads like the paper), the machinery
around it (replica seeding, the strategy, EMA), checkpoints with exact resume, TensorBoard, sample grids.

A run directory (see dcgan.run for the config and checkpoint it holds) is self-contained and reproducible:

    RUN_DIR/config.json          the TrainConfig the run was started with (resume reads it)
    RUN_DIR/checkpoints/         tf.train.Checkpoint: G, D, EMA G, both Adam states, step, data-iterator state
    RUN_DIR/logs/                TensorBoard events: losses, D outputs, images/s, sample grids (and FID if enabled)
    RUN_DIR/samples/step_N.png   fixed-z sample grids (z for seeds 0..num_samples-1, see dcgan.latent)
    RUN_DIR/metrics.jsonl        one JSON line per log step
    RUN_DIR/bad_files.log        inputs skipped, with the reason

Under MultiWorkerMirroredStrategy (TF_CONFIG names the cluster) only the chief writes these files; every other worker
writes the same ones to RUN_DIR/workertemp_<task_id>/ and deletes them when it ends (see `writer_role`).

Randomness is a pure function of (seed, step, replica): z and the flips come from stateless RNG ops, so resuming at
step k replays exactly what an uninterrupted run would have done (the data order comes from the iterator state).

Side jobs run by hooks that the caller builds and passes in (e.g. `dcgan.metrics.hook.fid_hook` for `fid_every`);
a hook sees the step number only, and what it was given when built (a sampler, arrays).
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
from dcgan.augment import Augment, DiffAugment, identity
from dcgan.config import ConfigError, TrainConfig, save_config
from dcgan.data import TrainingData, make_training_data
from dcgan.errors import RunDirError
from dcgan.interrupt import exit_now, signal_name
from dcgan.latent import z_from_seeds
from dcgan.run import CHECKPOINT_DIR, CONFIG_FILE, GanModels, is_run_dir, load_run_config
from dcgan.runtime import configure_tf_threads

log = logging.getLogger(__name__)


class TrainHook(Protocol):
    """Called every `every` steps with the step number; returns scalars to log (e.g. {"fid": 42.0})."""

    every: int

    def __call__(self, step: int) -> dict[str, float]: ...


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
    start_step: int = 0  # where this call started: > 0 when it resumed a run
    interrupted_by: int | None = None  # the signal (SIGINT, SIGTERM) that stopped it before config.steps, if any

    @property
    def interrupted(self) -> bool:
        return self.interrupted_by is not None


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


def writer_role(strategy: tf.distribute.Strategy, run_dir: str) -> tuple[bool, str]:
    """(is_chief, the directory this process writes its run files to). Under MultiWorkerMirroredStrategy every
    worker runs the same loop and saves the same checkpoints (saving may run collectives), but only the chief's
    files belong in `run_dir`: the others write to `run_dir/workertemp_<task_id>` and delete it at the end, as
    tf.distribute's multi-worker guide does (its `write_filepath`). One process, or MirroredStrategy: the chief."""
    if strategy.extended.should_checkpoint:
        return True, run_dir
    task_id = getattr(getattr(strategy, "cluster_resolver", None), "task_id", None)
    return False, fileio.join(run_dir, f"workertemp_{task_id}")


def _bce(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)[:, 0]


def dcgan_update(generator: keras.Model, discriminator: keras.Model, g_optimizer: keras.optimizers.Optimizer,
                 d_optimizer: keras.optimizers.Optimizer, real: tf.Tensor, z: tf.Tensor, *,
                 global_batch_size: int, real_label: float = 1.0, augment: Augment = identity,
                 ) -> dict[str, tf.Tensor]:
    """One DCGAN update on a batch of real images (in [-1, 1]) and z: D step, then G step against the updated D, as
    in pytorch/examples' dcgan/main.py. Losses are averaged over the global batch (each replica adds its share);
    `optimizer.scale_loss` is the identity except under loss scaling (mixed_float16), where `apply_gradients`
    unscales. `real_label` < 1 is one-sided label smoothing (Salimans et al. 2016); 1 = the paper. `augment` is
    applied to every batch D judges, real and fake, in both steps (DiffAugment; the identity = the paper); G and D
    learning rates are the optimizers' own (TTUR when they differ)."""
    batch = tf.shape(real)[0]

    def average(per_example: tf.Tensor) -> tf.Tensor:
        return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)

    def judge(images: tf.Tensor, stream: int) -> tf.Tensor:  # D's logits; D sees only augmented images (DiffAugment)
        return discriminator(augment(images, stream), training=True)

    g_tape = tf.GradientTape()  # records G's forward now and D's judgement of it in step (2)
    with g_tape:
        fake = generator(z, training=True)  # one G forward, reused by both steps (pytorch/examples does the same)

    # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
    with tf.GradientTape() as d_tape:
        real_logits = judge(real, 0)
        fake_logits = judge(tf.stop_gradient(fake), 1)
        d_loss = average(_bce(tf.fill([batch, 1], real_label), real_logits) + _bce(tf.zeros([batch, 1]), fake_logits))
        d_objective = d_optimizer.scale_loss(d_loss)
    d_grads = d_tape.gradient(d_objective, discriminator.trainable_variables)
    d_optimizer.apply_gradients(list(zip(d_grads, discriminator.trainable_variables)))

    # (2) Update G network: maximize log(D(G(z))) (the non-saturating loss of the GAN paper, §3)
    with g_tape:
        gen_logits = judge(fake, 2)
        g_loss = average(_bce(tf.ones([batch, 1]), gen_logits))
        g_objective = g_optimizer.scale_loss(g_loss)
    g_grads = g_tape.gradient(g_objective, generator.trainable_variables)
    g_optimizer.apply_gradients(list(zip(g_grads, generator.trainable_variables)))

    return {
        "d_loss": d_loss,
        "g_loss": g_loss,
        "d_real": average(tf.sigmoid(real_logits[:, 0])),  # D(x)
        "d_fake": average(tf.sigmoid(fake_logits[:, 0])),  # D(G(z)) before D's update
    }


def replica_seed(seed: int, step: tf.Tensor) -> tf.Tensor:
    """The stateless RNG seed of this replica at `step`: (seed·1024 + replica, step)."""
    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
    return tf.stack([tf.cast(seed, tf.int64) * 1024 + tf.cast(replica, tf.int64), step])


def replica_inputs(real_u8: tf.Tensor, step: tf.Tensor, *, seed: int, z_dim: int, random_flip: bool,
                   ) -> tuple[tf.Tensor, tf.Tensor]:
    """(real images in [-1, 1], randomly flipped; z) for this replica at `step`: stateless RNG seeded by (seed,
    replica, step), so a resumed run draws exactly what an uninterrupted one would have."""
    batch = tf.shape(real_u8)[0]
    rng_seed = replica_seed(seed, step)
    real = tf.cast(real_u8, tf.float32) / 127.5 - 1.0
    if random_flip:
        flip = tf.random.stateless_uniform([batch, 1, 1, 1], seed=rng_seed + [0, 1 << 40]) < 0.5
        real = tf.where(flip, tf.reverse(real, axis=[2]), real)
    z = tf.random.stateless_normal([batch, z_dim], seed=rng_seed)
    return real, z


def update_ema(ema: keras.Model, generator: keras.Model, step: tf.Variable, decay: float) -> None:
    """EMA of G's weights, with the warm-up of tf.train.ExponentialMovingAverage(num_updates=step): early on the
    average follows G closely instead of dragging in the random initialisation. BN statistics are copied."""
    stepf = tf.cast(step, tf.float32)
    d = tf.minimum(decay, (1.0 + stepf) / (10.0 + stepf))
    for ema_var, var in zip(ema.trainable_variables, generator.trainable_variables):
        ema_var.assign(d * ema_var + (1.0 - d) * var)
    for ema_var, var in zip(ema.non_trainable_variables, generator.non_trainable_variables):
        ema_var.assign(var)  # BN running statistics


class Trainer:
    """Trains one run directory: `Trainer(config, run_dir).train()` starts a run, `Trainer.resume(run_dir)` goes on."""

    def __init__(self, config: TrainConfig, run_dir: str, *, resume: bool = False, progress: bool = True,
                 hooks: Sequence[TrainHook] = ()):
        self.config = config.validate()
        self.run_dir = run_dir
        self.progress = progress
        self.hooks = list(hooks)
        self._stop_requested = False
        self._stop_signal: int | None = None

        configure_threads(config.intra_op_threads, config.inter_op_threads)
        self.strategy = select_strategy(config.strategy)  # first: MultiWorkerMirrored must precede other ops
        self.is_chief, self.write_dir = writer_role(self.strategy, run_dir)
        if resume:
            if not is_run_dir(run_dir):
                raise RunDirError(f"cannot resume: {run_dir!r} is not a run directory "
                                  f"(expected {CONFIG_FILE} and {CHECKPOINT_DIR}/)")
        elif self.is_chief and is_run_dir(run_dir):  # the chief decides; other workers may find its fresh files
            raise RunDirError(f"{run_dir!r} already holds a run; continue it with --resume {run_dir} "
                              "or choose a new --out")
        for sub in (CHECKPOINT_DIR, "logs", "samples"):
            fileio.makedirs(fileio.join(self.write_dir, sub))

        self.data: TrainingData = make_training_data(
            config.data, size=config.model.size, channels=config.model.channels, batch_size=config.batch_size,
            seed=config.seed, crop=config.crop, mode=config.input_mode, memory_limit_mb=config.memory_limit_mb,
            reject_log=fileio.join(self.write_dir, "bad_files.log"), progress=progress)
        self.models = GanModels(config, self.strategy)

        replicas = self.strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise ConfigError(f"batch_size={config.batch_size} must be divisible by the {replicas} replicas of the "
                              f"{type(self.strategy).__name__}")
        # One plain host iterator for every strategy: it is trackable, so its position is checkpointed (tf.data's
        # distributed iterators are not); each global batch is split across replicas inside the step.
        self.iterator = iter(self.data.dataset)
        self.ckpt = self.models.checkpoint(data_iterator=self.iterator)
        # Every worker saves (saving may run collectives); only the chief's checkpoints land in the run directory.
        self.manager = tf.train.CheckpointManager(self.ckpt, fileio.join(self.write_dir, CHECKPOINT_DIR),
                                                  max_to_keep=config.keep_checkpoints)
        self._saved_step: int | None = None  # the same on every worker: decides the final save without a race
        if resume:
            latest = tf.train.latest_checkpoint(fileio.join(run_dir, CHECKPOINT_DIR))  # the chief's, for all
            if latest:
                self.ckpt.restore(latest).assert_existing_objects_matched()
                self._saved_step = int(self.models.step.numpy())
                log.info("resumed %s at step %d", latest, self._saved_step)
        save_config(config, fileio.join(self.write_dir, CONFIG_FILE))

        self.writer = tf.summary.create_file_writer(fileio.join(self.write_dir, "logs"))
        self.sample_z = z_from_seeds(np.arange(config.num_samples), config.model.z_dim)
        self._train_step = self._build_step()

    # -- construction helpers ---------------------------------------------------------------------------------------
    @classmethod
    def resume(cls, run_dir: str, steps: int | None = None, **kwargs) -> Trainer:
        """Continue a run from its last checkpoint; `steps` (the new total) may extend it."""
        if not is_run_dir(run_dir):
            raise RunDirError(f"cannot resume: {run_dir!r} is not a run directory "
                              f"(expected {CONFIG_FILE} and {CHECKPOINT_DIR}/)")
        try:
            config = load_run_config(run_dir)
        except (ValueError, TypeError, ConfigError) as e:
            raise RunDirError(f"cannot resume: {run_dir}/{CONFIG_FILE} is not a valid run config: {e}") from e
        if steps is not None:
            config = config.replace(steps=steps)
        return cls(config, run_dir, resume=True, **kwargs)

    def _build_step(self) -> Callable[[], dict[str, tf.Tensor]]:
        """The compiled training step: next batch → split across replicas → `dcgan_update` on each → losses summed
        over replicas → EMA → step + 1."""
        cfg = self.config
        m = self.models
        strategy = self.strategy
        iterator = self.iterator
        lookup = self.data.lookup
        replicas = strategy.num_replicas_in_sync
        per_replica_batch = cfg.batch_size // replicas

        def replica_step(element: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
            real, z = replica_inputs(lookup(element), step, seed=cfg.seed, z_dim=cfg.model.z_dim,
                                     random_flip=cfg.random_flip)
            augment = DiffAugment(cfg.diffaugment, replica_seed(cfg.seed, step))  # identity when off
            return dcgan_update(m.generator, m.discriminator, m.g_optimizer, m.d_optimizer, real, z,
                                global_batch_size=cfg.batch_size, real_label=1.0 - cfg.label_smoothing,
                                augment=augment)

        def split(element: tf.Tensor):
            if replicas == 1:
                return element
            return strategy.experimental_distribute_values_from_function(
                lambda ctx: element[ctx.replica_id_in_sync_group * per_replica_batch:
                                    (ctx.replica_id_in_sync_group + 1) * per_replica_batch])

        @tf.function
        def train_step() -> dict[str, tf.Tensor]:
            per_replica = strategy.run(replica_step, args=(split(next(iterator)), m.step.read_value()))
            out = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}
            if m.ema_generator is not None:
                update_ema(m.ema_generator, m.generator, m.step, cfg.ema_decay)
            m.step.assign_add(1)
            return out

        return train_step

    # -- side jobs ----------------------------------------------------------------------------------------------------
    def sample(self, z: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """z [N, z_dim] → images [N, H, W, C] in [-1, 1] from the sampling generator's current weights (the EMA copy
        when there is one): the sampler hooks are given."""
        generator = self.models.sampling_generator
        z = np.asarray(z, np.float32)
        return np.concatenate([np.asarray(generator(z[i:i + batch_size], training=False), np.float32)
                               for i in range(0, len(z), batch_size)])

    def sample_grid(self) -> np.ndarray:
        return imlib.make_grid(self.sample(self.sample_z))

    def _write_samples(self, step: int) -> str:
        grid = self.sample_grid()
        path = imlib.save_image(grid, fileio.join(self.write_dir, "samples", f"step_{step:07d}.png"))
        with self.writer.as_default(step=step):
            tf.summary.image("samples", grid[None], max_outputs=1)
        return path

    def _log(self, step: int, values: dict[str, float]) -> None:
        log.info("step %d/%d %s", step, self.config.steps, " ".join(f"{k}={v:.4g}" for k, v in values.items()))
        with self.writer.as_default(step=step):
            for k, v in values.items():
                tf.summary.scalar(k, v)
        fileio.append_text(fileio.join(self.write_dir, "metrics.jsonl"),
                           json.dumps({"step": step, **{k: round(float(v), 6) for k, v in values.items()},
                                       "time": round(time.time(), 3)}) + "\n")

    def _save(self, step: int) -> str:
        path = self.manager.save(checkpoint_number=step)
        self._saved_step = step
        if not self.is_chief:
            return fileio.join(self.run_dir, CHECKPOINT_DIR, path.rstrip("/").rsplit("/", 1)[-1])  # the chief's
        log.info("checkpoint %s", path)
        return path

    def request_stop(self, signum: int | None = None, _frame=None) -> None:  # noqa: ANN001 - a signal handler
        """Finish the current step, checkpoint and return (wired to SIGINT/SIGTERM by `train`, which then reports
        the signal in `TrainResult.interrupted_by`). A second signal exits the process at once."""
        if self._stop_requested and signum is not None:
            exit_now(signum)
        self._stop_requested = True
        self._stop_signal = signum

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
        last_path = tf.train.latest_checkpoint(fileio.join(self.run_dir, CHECKPOINT_DIR)) or ""
        bar = tqdm(total=cfg.steps, initial=step, desc="training", unit="step", disable=not self.progress,
                   dynamic_ncols=True)
        t_window, n_window = time.perf_counter(), 0
        if cfg.fid_every and not self.hooks:
            log.warning("fid_every=%d but no FID hook was given: build one with dcgan.metrics.hook.fid_hook(...) "
                        "and append it to trainer.hooks", cfg.fid_every)
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
                for hook in self.hooks if self.is_chief else ():  # side jobs (FID...): the chief's
                    if hook.every and step % hook.every == 0:
                        self._log(step, hook(step))
                if step % cfg.checkpoint_every == 0:
                    last_path = self._save(step)
            if step > start_step and step % cfg.sample_every != 0:
                self._write_samples(step)
            if self._saved_step != step:
                last_path = self._save(step)
        finally:
            bar.close()
            self.writer.flush()
            if not self.is_chief:  # a worker's temporary copies go (tf.distribute's write_filepath pattern)
                self.writer.close()
                fileio.remove_tree(self.write_dir)
            for s, handler in previous.items():
                try:
                    signal.signal(s, handler)
                except (ValueError, TypeError):
                    pass
        interrupted_by = self._stop_signal if self._stop_requested and step < cfg.steps else None
        if interrupted_by is not None:
            log.warning("training stopped by %s at step %d of %d; checkpoint %s", signal_name(interrupted_by), step,
                        cfg.steps, last_path)
        return TrainResult(self.run_dir, step, values["d_loss"], values["g_loss"], ips, last_path,
                           self.data.num_examples, len(self.data.rejected), start_step, interrupted_by)
