"""The trainer learns, resumes exactly, writes what a run directory promises, distributes, and refuses bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, dcgan_command, write_synthetic_images

from dcgan import images as imlib
from dcgan.config import ModelConfig, TrainConfig
from dcgan.errors import DataError, RunDirError

TINY = ModelConfig(size=32, ngf=8, ndf=8)


def _config(data: str, **kw) -> TrainConfig:
    base = dict(model=TINY, data=data, steps=6, batch_size=16, log_every=2, sample_every=3, checkpoint_every=3,
                num_samples=16)
    base.update(kw)
    return TrainConfig(**base)


def _weights(models) -> list[np.ndarray]:
    out = [v.numpy() for v in models.generator.weights + models.discriminator.weights]
    out += [v.numpy() for v in models.g_optimizer.variables + models.d_optimizer.variables]
    if models.ema_generator is not None:
        out += [v.numpy() for v in models.ema_generator.weights]
    return out


def test_training_learns_the_colour_statistics_of_a_simple_distribution(tmp_path, artifacts_dir):
    """After a few hundred steps G's faces have the data's mean colour (≈ (190, 70, 50) with a lighter disc); an
    untrained G or a broken update stays near grey (127, 127, 127)."""
    from dcgan.train import Trainer

    data = write_synthetic_images(str(tmp_path / "data"), n=128, size=32)
    real = np.stack([imlib.load_image_file(os.path.join(data, f), 32) for f in sorted(os.listdir(data))])
    target = real.reshape(-1, 3).mean(0)
    config = _config(data, model=ModelConfig(size=32, ngf=16, ndf=16), steps=300, batch_size=32, log_every=50,
                     sample_every=300, checkpoint_every=300)
    trainer = Trainer(config, str(tmp_path / "run"), progress=False)
    before = imlib.to_uint8(trainer.models.generator(trainer.sample_z, training=False)).reshape(-1, 3).mean(0)
    assert np.abs(before - target).max() > 50, f"untrained G already matches the data colour: {before} vs {target}"
    trainer.train()
    faces = imlib.to_uint8(trainer.models.generator(trainer.sample_z, training=False))
    imlib.save_image(imlib.make_grid(faces), os.path.join(artifacts_dir, "train_synthetic_samples.png"))
    after = faces.reshape(-1, 3).mean(0)
    assert np.abs(after - target).max() < 25, f"G's mean colour {after.round(1)} is not the data's {target.round(1)}"
    # The disc: the centre is lighter than the corners, as in every training image.
    centre, corner = faces[:, 12:20, 12:20].mean(), faces[:, :4, :4].mean()
    assert centre > corner + 10, f"no lighter centre in G's samples (centre {centre:.1f}, corner {corner:.1f})"


def test_a_run_directory_holds_config_checkpoints_tensorboard_samples_and_metrics(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = set(os.listdir(tiny_run))
    assert {"config.json", "checkpoints", "logs", "samples", "metrics.jsonl"} <= files
    saved = TrainConfig.from_dict(json.load(open(os.path.join(tiny_run, "config.json"))))
    assert saved.steps == 6 and saved.model.size == 32
    ckpts = sorted(f for f in os.listdir(os.path.join(tiny_run, "checkpoints")) if f.endswith(".index"))
    assert ckpts == ["ckpt-3.index", "ckpt-6.index"]
    samples = sorted(os.listdir(os.path.join(tiny_run, "samples")))
    assert samples == ["step_0000000.png", "step_0000003.png", "step_0000006.png"]
    grid = imlib.decode_png(open(os.path.join(tiny_run, "samples", samples[-1]), "rb").read())
    assert grid.shape == (4 * 34 + 2, 4 * 34 + 2, 3) and grid.std() > 0
    events = EventAccumulator(os.path.join(tiny_run, "logs"), size_guidance={"tensors": 0})
    events.Reload()
    tags = set(events.Tags()["tensors"])
    assert {"d_loss", "g_loss", "d_real", "d_fake", "images_per_sec", "samples"} <= tags
    lines = [json.loads(x) for x in open(os.path.join(tiny_run, "metrics.jsonl"))]
    assert [x["step"] for x in lines] == [1, 2, 4, 6] and all(np.isfinite(x["d_loss"]) for x in lines)


def test_resume_continues_exactly_where_an_uninterrupted_run_would_be(tmp_path, image_folder):
    """6 steps straight == 3 steps, a new process-like Trainer, 3 more: weights, Adam slots and EMA bit-identical
    (z and flips are pure functions of (seed, step); the data order comes from the checkpointed iterator)."""
    from dcgan.train import Trainer

    config = _config(image_folder, ema_decay=0.9)
    straight = Trainer(config, str(tmp_path / "a"), progress=False)
    straight.train()
    Trainer(config.replace(steps=3), str(tmp_path / "b"), progress=False).train()
    resumed = Trainer.resume(str(tmp_path / "b"), steps=6, progress=False)
    assert int(resumed.models.step.numpy()) == 3
    resumed.train()
    for a, b in zip(_weights(straight.models), _weights(resumed.models), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_sigkill_mid_run_then_cli_resume_finishes_from_the_last_checkpoint(tmp_path, image_folder):
    run = str(tmp_path / "run")
    env = {**os.environ, "PYTHONPATH": REPO}
    args = ["train", "--data", image_folder, "--size", "32", "--ngf", "8", "--ndf", "8", "--batch-size", "16",
            "--steps", "400", "--checkpoint-every", "10", "--sample-every", "1000", "--log-every", "10",
            "--out", run, "--no-progress"]
    proc = subprocess.Popen(dcgan_command() + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ckpt_dir = os.path.join(run, "checkpoints")
    deadline = time.time() + 240
    while time.time() < deadline:
        done = [f for f in os.listdir(ckpt_dir)] if os.path.isdir(ckpt_dir) else []
        # ckpt-30's files mean ckpt-20 was wholly recorded (the `checkpoint` index is written after a checkpoint's
        # files, so waiting for ckpt-20's own files raced with its index: the kill could land between the two)
        if any(f.startswith("ckpt-30.") for f in done) or proc.poll() is not None:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"training ended before it could be killed: {proc.stdout.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    import tensorflow as tf

    killed_at = int(tf.train.latest_checkpoint(ckpt_dir).rsplit("-", 1)[1])
    assert 20 <= killed_at < 400
    # The new total is 20 steps past wherever the kill landed, so every machine, fast or slow, checks the same thing:
    # the resumed process exits 0 and continues from the checkpoint (no skip path).
    target = killed_at + 20
    out = subprocess.run(dcgan_command() + ["train", "--resume", run, "--steps", str(target), "--no-progress"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"to step {target}" in out.stdout
    assert tf.train.latest_checkpoint(ckpt_dir).endswith(f"ckpt-{target}")
    steps = [json.loads(x)["step"] for x in open(os.path.join(run, "metrics.jsonl"))]
    assert steps[-1] == target and killed_at + 1 in steps, "the resumed run did not continue from the checkpoint"


def test_resume_refuses_a_directory_that_is_not_a_run_and_new_runs_refuse_an_existing_one(tmp_path, tiny_run,
                                                                                          image_folder):
    from dcgan.train import Trainer

    with pytest.raises(RunDirError, match="is not a run directory"):
        Trainer.resume(str(tmp_path))
    with pytest.raises(RunDirError, match="already holds a run"):
        Trainer(_config(image_folder), tiny_run, progress=False)


def test_unreadable_and_undecodable_files_are_skipped_counted_and_named(tmp_path):
    from dcgan.train import Trainer

    data = write_synthetic_images(str(tmp_path / "data"), n=20, size=32)
    (tmp_path / "data" / "notes.jpg").write_text("not an image")
    (tmp_path / "data" / "empty.png").write_bytes(b"")
    good = open(os.path.join(data, "img_0000.png"), "rb").read()
    (tmp_path / "data" / "cut.png").write_bytes(good[: len(good) // 2])
    locked = tmp_path / "data" / "locked.png"
    locked.write_bytes(good)
    locked.chmod(0)
    trainer = Trainer(_config(data, steps=2), str(tmp_path / "run"), progress=False)
    if os.access(locked, os.R_OK):  # running as root: permissions do not stop reads
        expected = {"notes.jpg": "not_an_image", "empty.png": "empty_file", "cut.png": "truncated"}
    else:
        expected = {"notes.jpg": "not_an_image", "empty.png": "empty_file", "cut.png": "truncated",
                    "locked.png": "unreadable"}
    got = {os.path.basename(f): reason for f, reason in trainer.data.rejected}
    assert got == expected
    assert trainer.data.num_examples == 20 + (1 if "locked.png" not in expected else 0)
    log = open(os.path.join(str(tmp_path / "run"), "bad_files.log")).read()
    assert all(name in log for name in expected)
    trainer.train()


def test_bad_data_arguments_fail_with_a_clear_message(tmp_path, image_folder):
    from dcgan.data import make_training_data

    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_text("text")
    cases = [
        (str(tmp_path / "missing"), 8, "data path does not exist"),
        (str(tmp_path / "empty"), 8, "no image files"),
        (str(tmp_path / "junk"), 8, "none of the 1 file"),
        (image_folder, 1000, "batch_size=1000 is larger than the dataset"),
    ]
    for data, batch, message in cases:
        with pytest.raises(DataError, match=message):
            make_training_data(data, size=32, channels=3, batch_size=batch, seed=0, progress=False)


def test_stream_mode_and_tfrecords_feed_the_same_trainer(tmp_path, image_folder):
    import tensorflow as tf

    from dcgan import schema
    from dcgan.data import make_training_data
    from dcgan.train import Trainer

    stream = make_training_data(image_folder, size=32, channels=3, batch_size=8, seed=0, mode="stream",
                                progress=False)
    batch = next(iter(stream.dataset))
    assert stream.mode == "stream" and batch.shape == (8, 32, 32, 3) and batch.dtype == tf.uint8
    split = tmp_path / "examples" / "Split-train"
    split.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split / f"data{schema.FILE_SUFFIX}"), options="GZIP") as w:
        for i, name in enumerate(sorted(os.listdir(image_folder))[:24]):
            img = imlib.load_image_file(os.path.join(image_folder, name), 40)
            w.write(schema.make_example(imlib.encode_png(img), 40, 40, str(i), "test").SerializeToString())
    for mode in ("memory", "stream"):
        data = make_training_data(str(tmp_path / "examples"), size=32, channels=3, batch_size=8, seed=0, mode=mode,
                                  progress=False)
        assert data.source.kind == "tfrecord" and data.num_examples == 24
        assert data.lookup(next(iter(data.dataset))).shape == (8, 32, 32, 3)
    result = Trainer(_config(str(tmp_path / "examples"), steps=2, batch_size=8), str(tmp_path / "run"),
                     progress=False).train()
    assert result.step == 2 and np.isfinite(result.d_loss)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_and_exports_in_float32(tmp_path, image_folder, precision):
    import keras

    from dcgan.export import LoadedGenerator, export_run
    from dcgan.train import Trainer

    try:
        trainer = Trainer(_config(image_folder, steps=2, precision=precision), str(tmp_path / "run"),
                          progress=False)
        assert trainer.models.generator.get_layer("deconv1").compute_dtype == precision.split("_")[1]
        result = trainer.train()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(result.d_loss) and np.isfinite(result.g_loss)
    path = export_run(str(tmp_path / "run"), str(tmp_path / "export"))
    keras.mixed_precision.set_global_policy("float32")
    images = LoadedGenerator(path).images(np.zeros((2, 100), np.float32))
    assert images.dtype == np.float32 and images.shape == (2, 32, 32, 3)



def test_loading_a_run_builds_its_models_at_the_asked_precision_and_leaves_the_global_policy_alone(tiny_run):
    """`load_models` (export, visualize, metrics, studio) has no process-wide side effect: before the layering it set
    Keras's global dtype policy, so every model built afterwards in the process silently ran in that precision."""
    import keras

    from dcgan.run import load_models

    assert keras.config.dtype_policy().name == "float32"
    models = load_models(tiny_run, precision="mixed_bfloat16")
    assert models.generator.get_layer("deconv1").compute_dtype == "bfloat16"
    assert keras.config.dtype_policy().name == "float32", "load_models changed the global precision policy"
    assert load_models(tiny_run).generator.get_layer("deconv1").compute_dtype == "float32"


def test_the_gan_update_reads_like_the_paper_d_step_then_g_step():
    """`dcgan_update` is one module-level function: (1) D, then (2) G against the updated D."""
    import inspect

    from dcgan import train

    source = inspect.getsource(train.dcgan_update)
    d_step, g_step = source.index("(1) Update D network"), source.index("(2) Update G network")
    assert d_step < g_step
    assert source.index("d_optimizer.apply_gradients") < g_step < source.index("g_optimizer.apply_gradients")
    assert "Trainer" not in source and "strategy" not in source

MIRRORED_SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from dcgan.config import ModelConfig, TrainConfig
from dcgan.train import Trainer
config = TrainConfig(model=ModelConfig(size=32, ngf=8, ndf=8), data=sys.argv[1], steps=3, batch_size=16, log_every=1,
                     sample_every=3, checkpoint_every=3, strategy="mirrored", ema_decay=0.9)
trainer = Trainer(config, sys.argv[2], progress=False)
result = trainer.train()
diffs = [float(abs(v.value.values[0].numpy() - v.value.values[1].numpy()).max())
         for v in trainer.models.generator.trainable_variables + trainer.models.discriminator.trainable_variables]
print(json.dumps({"replicas": trainer.strategy.num_replicas_in_sync, "step": result.step, "d_loss": result.d_loss,
                  "max_replica_diff": max(diffs)}))
"""


def test_mirrored_strategy_on_two_logical_cpu_devices_runs_synchronised_steps(tmp_path, image_folder):
    out = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, image_folder, str(tmp_path / "run")],
                         env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["step"] == 3 and np.isfinite(report["d_loss"])
    assert report["max_replica_diff"] == 0.0, "replicas' weights diverged: gradients were not all-reduced"
