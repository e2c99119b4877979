"""Export the generator as a SavedModel with serving signatures — the contract with TF Serving and every client.

Signatures (N ≤ MAX_BATCH; inputs are validated inside the graph, so a bad request fails with INVALID_ARGUMENT):

| signature         | inputs                                         | outputs                                        |
|-------------------|------------------------------------------------|------------------------------------------------|
| `serving_default` | `z` float32 [N, z_dim], finite                 | `images` float32 [N, H, W, C] in [-1, 1]       |
| `generate`        | `seed` int64 [N]                               | `png_bytes` string [N] (PNG), `z` [N, z_dim]   |
| `interpolate`     | `z0`, `z1` float32 [N, z_dim], `t` float32 [N] | `images` [N, H, W, C], `z` float32 [N, z_dim]  |
| `project`         | `image` float32 [N, H, W, C] in [-1, 1], N ≤ 16| `z` [N, z_dim], `images` (G(z)), `distance` [N]|
|                   |                                                | (pixel MSE), `loss` [N] (the objective)        |

`generate` draws z for seed s with `tf.random.stateless_normal([z_dim], seed=[s, 0])` (see dcgan.latent), so a face
and its z can be shown together and regenerated from either. `png_bytes` ends in `_bytes` so TF Serving's REST API
returns it base64-encoded (`{"b64": ...}`).

`interpolate` is row-wise slerp: row i is the point at position t[i] ∈ [0, 1] on the great circle from z0[i] to
z1[i] (exactly z0 at t = 0 and z1 at t = 1). A walk of `steps` frames sends z0/z1 repeated and
t = linspace(0, 1, steps).
`project` inverts the generator (dcgan.projection): z found by a bounded in-graph optimisation (seeded random
candidates, the best few refined by Adam on a pixel + discriminator-feature loss, the best kept). Its image input is
in the generator's own range, so a face from `serving_default` can be projected as it is; uint8 pictures are mapped
with x / 127.5 − 1. The discriminator's feature layers are exported with the generator for it (tracked tf.Variables
like G's); an export without a discriminator projects on pixels only. Its settings (`ProjectionConfig`) are fixed at
export and recorded in dcgan.json under "projection".
Every input has a batch dimension, so all signatures work with server-side batching.

`assets.extra/tf_serving_warmup_requests` holds one PredictionLog per signature; TF Serving (and `dcgan serve`)
replays them when a version loads, so the first real request does not pay for graph warm-up.
`assets.extra/dcgan.json` records the model config, training step and provenance. The export is written to a
temporary sibling directory and renamed into place, so a model server polling the parent never sees half a model.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dcgan import fileio
from dcgan.config import ModelConfig
from dcgan.latent import z_from_seeds_tf
from dcgan.projection import MAX_PROJECT_BATCH, ProjectionConfig, build_feature_model, project_graph

MAX_BATCH = 1024
METADATA_FILE = os.path.join("assets.extra", "dcgan.json")
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def write_warmup_requests(path: str, z_dim: int) -> str:
    """TF Serving's SavedModel warm-up file: a TFRecord of PredictionLog protos, one Predict per signature."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2  # the official protos only

    z = np.zeros((1, z_dim), np.float32)
    requests = {
        "serving_default": {"z": z},
        "generate": {"seed": np.zeros([1], np.int64)},
        "interpolate": {"z0": z, "z1": z, "t": np.full([1], 0.5, np.float32)},
    }
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests.items():
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(signature_name=signature))
            for name, value in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def _slerp_rows_tf(z0: tf.Tensor, z1: tf.Tensor, t: tf.Tensor) -> tf.Tensor:
    """Row-wise slerp: z0, z1 [N, d], t [N] → [N, d]; rows with t = 0 / t = 1 are exactly z0 / z1, near-parallel
    pairs fall back to lerp."""
    t = t[:, None]
    n0 = tf.norm(z0, axis=1, keepdims=True)
    n1 = tf.norm(z1, axis=1, keepdims=True)
    cos = tf.clip_by_value(tf.reduce_sum(z0 * z1, axis=1, keepdims=True) / tf.maximum(n0 * n1, 1e-12), -1.0, 1.0)
    omega = tf.acos(cos)
    so = tf.sin(omega)
    spherical = (tf.sin((1.0 - t) * omega) * z0 + tf.sin(t * omega) * z1) / tf.maximum(so, 1e-12)
    linear = (1.0 - t) * z0 + t * z1
    path = tf.where(so < 1e-6, linear, spherical)
    path = tf.where(t == 0.0, z0, path)
    return tf.where(t == 1.0, z1, path)


def _images(generator: keras.Model, z: tf.Tensor, z_dim: int) -> tf.Tensor:
    """The generator's images for z [N, z_dim], after the in-graph checks every signature shares."""
    z = tf.ensure_shape(z, [None, z_dim])  # callers that bypass the signature's shape check still get one
    with tf.control_dependencies([
        tf.debugging.assert_all_finite(z, "z must be finite (no NaN/Inf)"),
        tf.debugging.assert_less_equal(tf.shape(z)[0], MAX_BATCH, message=f"batch size must be at most {MAX_BATCH}"),
    ]):
        z = tf.identity(z)
    return tf.cast(generator(z, training=False), tf.float32)


def _tf_variable(variable: Any) -> tf.Variable:
    """The tf.Variable behind a Keras 3 variable (its `.value` on the TensorFlow backend)."""
    value = getattr(variable, "value", variable)
    if not isinstance(value, tf.Variable):
        raise TypeError(f"{getattr(variable, 'path', variable)!r} is not backed by a tf.Variable (Keras backend "
                        f"{keras.backend.backend()!r}); the export needs the TensorFlow backend")
    return value


class GeneratorModule(tf.Module):
    """A tf.Module wrapping the Keras generator with the serving signatures above."""

    def __init__(self, generator: keras.Model, config: ModelConfig, discriminator: keras.Model | None = None,
                 projection: ProjectionConfig | None = None):
        super().__init__(name="dcgan_generator")
        # Track the tf.Variables the functions below actually read (each Keras variable's backend `.value`), not the
        # Keras model, as Keras' own model.export() does: the SavedModel's restore op then writes exactly the
        # variables the signatures read, so a TF1 session (tensorflow_model_server, `dcgan serve`) restores and runs
        # every signature. Tracking the Keras model instead checkpoints copies (`Variable_N`) and leaves the graph's
        # variables (`project_bn/beta`, ...) uninitialised. The model is only reached through the closures below.
        self.generator_variables = [_tf_variable(v) for v in generator.variables]
        self.z_dim = config.z_dim
        z_dim = config.z_dim
        projection = (projection or ProjectionConfig()).validate()
        feature_model = build_feature_model(discriminator, config.num_upsamplings) if discriminator else None
        # D's feature layers, tracked the same way (only what `project` reads: the logit layer is not part of it).
        self.discriminator_variables = [_tf_variable(v) for v in feature_model.variables] if feature_model else []

        def generated(z: tf.Tensor) -> tf.Tensor:
            return _images(generator, z, z_dim)

        @tf.function(input_signature=[tf.TensorSpec([None, z_dim], tf.float32, name="z")])
        def serving_default(z):
            return {"images": generated(z)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="seed")])
        def generate(seed):
            seed = tf.ensure_shape(seed, [None])
            self._check_batch(tf.shape(seed)[0])
            z = z_from_seeds_tf(seed, z_dim)
            images = generated(z)
            pixels = tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)
            png = tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.TensorSpec([], tf.string))
            return {"png_bytes": png, "z": z}

        @tf.function(input_signature=[tf.TensorSpec([None, z_dim], tf.float32, name="z0"),
                                      tf.TensorSpec([None, z_dim], tf.float32, name="z1"),
                                      tf.TensorSpec([None], tf.float32, name="t")])
        def interpolate(z0, z1, t):
            n = tf.shape(t)[0]
            with tf.control_dependencies([
                tf.debugging.assert_equal(tf.shape(z0)[0], n, message="z0, z1 and t must have the same batch size"),
                tf.debugging.assert_equal(tf.shape(z1)[0], n, message="z0, z1 and t must have the same batch size"),
                tf.debugging.assert_all_finite(z0, "z0 must be finite (no NaN/Inf)"),
                tf.debugging.assert_all_finite(z1, "z1 must be finite (no NaN/Inf)"),
                tf.debugging.assert_all_finite(t, "t must be finite (no NaN/Inf)"),
                tf.debugging.assert_greater_equal(t, 0.0, message="t must be in [0, 1]"),
                tf.debugging.assert_less_equal(t, 1.0, message="t must be in [0, 1]"),
            ]):
                z = _slerp_rows_tf(z0, z1, t)
            return {"images": generated(z), "z": z}

        image_spec = tf.TensorSpec([None, config.size, config.size, config.channels], tf.float32, name="image")

        @tf.function(input_signature=[image_spec])
        def project(image):
            image = tf.ensure_shape(image, [None, config.size, config.size, config.channels])
            with tf.control_dependencies([
                tf.debugging.assert_all_finite(image, "image must be finite (no NaN/Inf)"),
                tf.debugging.assert_greater_equal(image, -1.0, message="image values must be in [-1, 1] "
                                                  "(uint8 pixels: x / 127.5 - 1)"),
                tf.debugging.assert_less_equal(image, 1.0, message="image values must be in [-1, 1] "
                                               "(uint8 pixels: x / 127.5 - 1)"),
                tf.debugging.assert_less_equal(tf.shape(image)[0], MAX_PROJECT_BATCH,
                                               message=f"project takes at most {MAX_PROJECT_BATCH} images"),
            ]):
                image = tf.identity(image)

            def features(x):
                return list(feature_model(x, training=False))

            return project_graph(lambda z: tf.cast(generator(z, training=False), tf.float32),
                                 features if feature_model else None, image, z_dim, projection)

        self.serving_default = serving_default
        self.generate = generate
        self.interpolate = interpolate
        self.project = project
        self.projection = projection
        self.has_features = feature_model is not None

    def _check_batch(self, n: tf.Tensor) -> None:
        tf.debugging.assert_less_equal(n, MAX_BATCH, message=f"batch size must be at most {MAX_BATCH}")


SIGNATURES = ("serving_default", "generate", "interpolate", "project")


def export_generator(generator: keras.Model, config: ModelConfig, out_dir: str,
                     metadata: dict[str, Any] | None = None, overwrite: bool = False, *,
                     discriminator: keras.Model | None = None, projection: ProjectionConfig | None = None) -> str:
    """Write the SavedModel to `out_dir` (atomically). Returns `out_dir`. With `discriminator`, its feature layers go
    into the export for `project`'s feature term."""
    if fileio.is_remote(out_dir):
        if fileio.exists(out_dir) and not overwrite:
            raise FileExistsError(f"{out_dir} already exists; pass overwrite=True (--force) to replace it")
        import tempfile

        with tempfile.TemporaryDirectory(prefix="dcgan-export-") as local:
            export_generator(generator, config, os.path.join(local, "model"), metadata,
                             discriminator=discriminator, projection=projection)
            if fileio.exists(out_dir):
                fileio.remove_tree(out_dir)
            return fileio.upload_tree(os.path.join(local, "model"), out_dir)
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(out_dir):
        if not overwrite:
            raise FileExistsError(f"{out_dir} already exists; pass overwrite=True (--force) to replace it")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    # A dot-prefixed sibling: model servers ignore it while it is being written (not an integer version).
    tmp = os.path.join(parent, f".{os.path.basename(out_dir)}.tmp-{os.getpid()}-{int(time.time())}")
    module = GeneratorModule(generator, config, discriminator, projection)
    tf.saved_model.save(module, tmp, signatures={name: getattr(module, name) for name in SIGNATURES})
    meta = {
        "format": "dcgan-generator/1",
        "model": json.loads(json.dumps(config.__dict__)),
        "image_shape": [config.size, config.size, config.channels],
        "signatures": list(SIGNATURES),
        "max_batch": MAX_BATCH,
        "projection": {**module.projection.to_dict(), "max_batch": MAX_PROJECT_BATCH,
                       "feature_loss": "discriminator" if module.has_features else "none"},
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(metadata or {}),
    }
    os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
    with open(os.path.join(tmp, METADATA_FILE), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
    write_warmup_requests(os.path.join(tmp, WARMUP_FILE), config.z_dim)
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


def export_run(run_dir: str, out_dir: str, *, use_ema: bool = True, checkpoint: str | None = None,
               overwrite: bool = False, extra_metadata: dict[str, Any] | None = None,
               projection: ProjectionConfig | None = None) -> str:
    """Export the generator of a training run (the EMA copy when the run keeps one and `use_ema`), with the
    discriminator's feature layers for `project`."""
    from dcgan.run import load_models  # heavy; only needed here

    models = load_models(run_dir, checkpoint=checkpoint, precision="float32")
    generator = models.sampling_generator if use_ema else models.generator
    metadata = {
        "run_dir": run_dir if fileio.is_remote(run_dir) else os.path.abspath(run_dir),
        "step": int(models.step.numpy()),
        "ema": bool(use_ema and models.ema_generator is not None),
        "train_config": models.config.to_dict(),
        **(extra_metadata or {}),
    }
    return export_generator(generator, models.config.model, out_dir, metadata, overwrite=overwrite,
                            discriminator=models.discriminator, projection=projection)


def read_metadata(saved_model_dir: str) -> dict[str, Any]:
    path = fileio.join(saved_model_dir, METADATA_FILE)
    if not fileio.exists(path):
        return {}
    with fileio.open_file(path) as f:
        return json.load(f)


class LoadedGenerator:
    """A generator loaded from a SavedModel export, called like the server would call it."""

    def __init__(self, saved_model_dir: str):
        if not fileio.exists(fileio.join(saved_model_dir, "saved_model.pb")):
            raise FileNotFoundError(f"{saved_model_dir!r} is not a SavedModel directory (no saved_model.pb)")
        self.path = saved_model_dir
        self.module = tf.saved_model.load(saved_model_dir)
        self.metadata = read_metadata(saved_model_dir)
        spec = self.module.signatures["serving_default"].structured_input_signature[1]["z"]
        self.z_dim = int(spec.shape[-1])

    def images(self, z: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(z), MAX_BATCH):
            out.append(self.module.signatures["serving_default"](z=tf.constant(z[i:i + MAX_BATCH], tf.float32))
                       ["images"].numpy())
        return np.concatenate(out)

    def generate(self, seeds) -> dict[str, np.ndarray]:
        out = self.module.signatures["generate"](seed=tf.constant(np.asarray(seeds, np.int64)))
        return {k: v.numpy() for k, v in out.items()}

    def project(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """`project` on images [N, H, W, C] in [-1, 1] (any N: sent in chunks of MAX_PROJECT_BATCH)."""
        if "project" not in self.module.signatures:
            raise ValueError(f"{self.path} has no project signature (exported before it existed): export it again")
        parts = [self.module.signatures["project"](image=tf.constant(images[i:i + MAX_PROJECT_BATCH], tf.float32))
                 for i in range(0, len(images), MAX_PROJECT_BATCH)]
        return {k: np.concatenate([p[k].numpy() for p in parts]) for k in parts[0]}
