"""DiffAugment (dcgan.augment) and the training options around it: the transforms are differentiable, keep shape and
dtype (mixed precision too), draw reproducibly from their seed, are the identity when off; the update applies the
same policy to every batch D judges (real and fake, D step and G step); TTUR gives D its own learning rate."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from dcgan.augment import DiffAugment, identity, rand_color, rand_cutout, rand_translation
from dcgan.config import ConfigError, ModelConfig, TrainConfig

FULL = "color,translation,cutout"


def _images(batch: int = 8, size: int = 32, seed: int = 0) -> tf.Tensor:
    return tf.random.stateless_uniform([batch, size, size, 3], seed=[seed, 1], minval=-1.0, maxval=1.0)


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", FULL])
def test_every_transform_is_differentiable_in_the_image(policy):
    x = _images()
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(DiffAugment(policy, [1, 2])(x) ** 2)
    grad = tape.gradient(loss, x)
    assert grad is not None and grad.shape == x.shape
    assert np.all(np.isfinite(grad.numpy())) and float(tf.reduce_max(tf.abs(grad))) > 0


@pytest.mark.parametrize("dtype", [tf.float32, tf.float16, tf.bfloat16])
@pytest.mark.parametrize("size", [32, 64])
def test_shape_and_dtype_are_kept_also_under_mixed_precision_and_in_a_traced_step(dtype, size):
    x = tf.cast(_images(size=size), dtype)
    augment = DiffAugment(FULL, [3, 4])
    eager = augment(x, 0)
    traced = tf.function(lambda images: augment(images, 0))(x)
    for y in (eager, traced):
        assert y.shape == x.shape and y.dtype == dtype
        assert np.all(np.isfinite(tf.cast(y, tf.float32).numpy()))


def test_the_draws_are_a_function_of_seed_and_stream_and_every_image_draws_its_own():
    x = _images()
    augment = DiffAugment(FULL, [5, 100])
    np.testing.assert_array_equal(augment(x, 0), DiffAugment(FULL, [5, 100])(x, 0))  # reproducible (exact resume)
    assert not np.allclose(augment(x, 0), augment(x, 1)), "streams (real / fake / G step) must draw independently"
    assert not np.allclose(augment(x, 0), DiffAugment(FULL, [5, 101])(x, 0)), "the next step must draw anew"
    same = tf.repeat(x[:1], 8, axis=0)
    out = augment(same, 0).numpy()
    assert len({out[i].tobytes() for i in range(8)}) == 8, "one image repeated 8× must come out 8 different ways"


def test_off_is_the_identity():
    x = _images()
    assert not DiffAugment("", [1, 1])
    assert DiffAugment("", [1, 1])(x, 2) is x
    assert identity(x, 0) is x


def test_what_each_transform_does():
    seed = tf.constant([7, 9], tf.int64)
    ones = tf.ones([16, 32, 32, 3])
    # translation: an image shifted by at most 1/8 of the side (4 px); zeros come in at the edges only
    shifted = rand_translation(ones, seed).numpy()
    zero_rows = (shifted == 0).all(axis=(2, 3)).sum(axis=1)
    zero_cols = (shifted == 0).all(axis=(1, 3)).sum(axis=1)
    assert zero_rows.max() <= 4 and zero_cols.max() <= 4 and (zero_rows + zero_cols).max() > 0
    ramp = tf.tile(tf.range(32, dtype=tf.float32)[None, :, None, None], [16, 1, 32, 3])
    moved = rand_translation(ramp, seed).numpy()[:, 8:24, 16, 0]  # away from shifted-in edges
    assert np.all(np.diff(moved, axis=1) == 1) and len(set(moved[:, 0])) > 1, "rows move whole, in order"
    # cutout: one square of half the side (≤ 16×16 zeros, clipped at the edges), the rest untouched
    cut = rand_cutout(ones, seed).numpy()
    zeros = (cut == 0).all(axis=3).sum(axis=(1, 2))
    assert zeros.max() <= 16 * 16 and zeros.min() > 0 and np.all((cut == 0) | (cut == 1))
    # colour: per-image brightness/saturation/contrast; a grey image stays grey (saturation acts on colour only)
    grey = tf.zeros([16, 32, 32, 3]) + 0.2
    out = rand_color(grey, seed).numpy()
    np.testing.assert_allclose(out, out[..., :1].repeat(3, axis=3), atol=1e-6)
    assert out.reshape(16, -1).std(axis=1).max() < 1e-5 and out[:, 0, 0, 0].std() > 0.05


def test_the_policy_is_validated_with_a_clear_message(tmp_path):
    good = TrainConfig(data=str(tmp_path), diffaugment="translation,color")
    assert good.validate().diffaugment == "translation,color"
    assert DiffAugment("translation,color").policy == ("color", "translation")  # the paper's order
    with pytest.raises(ConfigError, match=r"diffaugment='colour'.*unknown DiffAugment policy \['colour'\]"):
        TrainConfig(data=str(tmp_path), diffaugment="colour").validate()
    with pytest.raises(ConfigError, match="names a transform twice"):
        TrainConfig(data=str(tmp_path), diffaugment="cutout,cutout").validate()


def test_ttur_learning_rates_are_validated_and_reach_the_two_optimizers(tmp_path):
    from dcgan.run import GanModels

    with pytest.raises(ConfigError, match=r"d_learning_rate=-0.001 must be 0 \(= learning_rate\) or in \(0, 1\)"):
        TrainConfig(data=str(tmp_path), d_learning_rate=-1e-3).validate()
    with pytest.raises(ConfigError, match="d_learning_rate=2.0"):
        TrainConfig(data=str(tmp_path), d_learning_rate=2.0).validate()
    tiny = ModelConfig(size=32, ngf=8, ndf=8)
    paper = GanModels(TrainConfig(model=tiny, data=str(tmp_path)).validate())
    assert float(paper.g_optimizer.learning_rate) == pytest.approx(2e-4)
    assert float(paper.d_optimizer.learning_rate) == pytest.approx(2e-4)
    ttur = GanModels(TrainConfig(model=tiny, data=str(tmp_path), learning_rate=1e-4, d_learning_rate=4e-4).validate())
    assert float(ttur.g_optimizer.learning_rate) == pytest.approx(1e-4)
    assert float(ttur.d_optimizer.learning_rate) == pytest.approx(4e-4)
    loss_scaled = GanModels(TrainConfig(model=tiny, data=str(tmp_path), learning_rate=1e-4, d_learning_rate=4e-4,
                                        precision="mixed_float16").validate())
    assert float(loss_scaled.d_optimizer.inner_optimizer.learning_rate) == pytest.approx(4e-4)


def test_the_update_shows_d_every_batch_through_the_same_augmentation():
    """dcgan_update calls `augment` on real and fake in D's step and on fake in G's step, with distinct streams, and
    G's gradient flows through it."""
    import keras

    from dcgan.model import build_discriminator, build_generator
    from dcgan.train import dcgan_update

    model = ModelConfig(size=32, ngf=8, ndf=8)
    generator, discriminator = build_generator(model, seed=0), build_discriminator(model, seed=0)
    g_opt, d_opt = keras.optimizers.Adam(2e-4, beta_1=0.5), keras.optimizers.Adam(2e-4, beta_1=0.5)
    calls: list[tuple[int, tuple, tf.DType]] = []
    augment = DiffAugment(FULL, [0, 3])

    def recording(images: tf.Tensor, stream: int = 0) -> tf.Tensor:
        calls.append((stream, tuple(images.shape), images.dtype))
        return augment(images, stream)

    real = _images(batch=4)
    z = tf.random.stateless_normal([4, model.z_dim], seed=[1, 1])
    before = [w.numpy() for w in generator.trainable_variables]
    out = dcgan_update(generator, discriminator, g_opt, d_opt, real, z, global_batch_size=4, augment=recording)
    assert [c[0] for c in calls] == [0, 1, 2]
    assert {c[1] for c in calls} == {(4, 32, 32, 3)} and {c[2] for c in calls} == {tf.float32}
    assert all(np.isfinite(float(v)) for v in out.values())
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(before, generator.trainable_variables))


def test_a_run_with_the_options_trains_and_saves_them_with_its_config(tmp_path, image_folder):
    from dcgan.train import Trainer

    config = TrainConfig(model=ModelConfig(size=32, ngf=8, ndf=8), data=image_folder, steps=3, batch_size=8,
                         log_every=1, sample_every=3, checkpoint_every=3, num_samples=4, diffaugment=FULL,
                         learning_rate=1e-4, d_learning_rate=4e-4)
    run = str(tmp_path / "run")
    result = Trainer(config, run, progress=False).train()
    assert result.step == 3 and np.isfinite(result.d_loss) and np.isfinite(result.g_loss)
    saved = json.load(open(os.path.join(run, "config.json")))
    assert (saved["diffaugment"], saved["learning_rate"], saved["d_learning_rate"]) == (FULL, 1e-4, 4e-4)
    assert TrainConfig.from_dict(saved) == config
