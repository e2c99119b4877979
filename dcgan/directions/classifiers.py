"""The two attribute networks: the classifier that labels generated samples to fit the directions, and the
independent judge that grades them (another architecture, another seed, the other half of the examples); their
training, held-out metrics, and the exported SavedModel (`export_attribute_classifier`) the studio loads without
any training code (`AttributeClassifier`). TensorFlow/Keras are imported only inside the functions that need them."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from dcgan import fileio
from dcgan.directions.store import DirectionsFileError

CLASSIFIER_FORMAT = "dcgan-attribute-classifier/1"
CLASSIFIER_INFO = os.path.join("assets.extra", "attributes.json")  # inside the classifier's SavedModel
CLASSIFIER_ARCHITECTURE = "3 x (conv3x3 + LeakyReLU + maxpool) -> dropout -> sigmoid per attribute"
JUDGE_ARCHITECTURE = ("3 x (strided conv 5x5/3x3/3x3 + batch norm + ReLU), 48-96-160 filters -> dropout -> sigmoid "
                      "per attribute")


# -- the attribute classifier -----------------------------------------------------------------------------------------
def build_classifier(size: int, channels: int, outputs: int, seed: int = 0):
    """A small CNN, one sigmoid per attribute. Input: images in [-1, 1] (the generator's range)."""
    import keras
    from keras import layers

    def conv(filters: int, i: int):
        return layers.Conv2D(filters, 3, padding="same",
                             kernel_initializer=keras.initializers.HeNormal(seed=seed + i), name=f"conv{i}")

    inputs = keras.Input((size, size, channels), name="image")
    x = inputs
    for i, filters in enumerate((32, 64, 128)):
        x = conv(filters, i)(x)
        x = layers.LeakyReLU(0.2)(x)
        x = layers.MaxPooling2D(2)(x)
    return keras.Model(inputs, _attribute_head(x, size, outputs, seed), name="attribute_classifier")


def _attribute_head(features, size: int, outputs: int, seed: int):
    """The head both networks share: their size/8 feature map average-pooled to 4×4 (keeps the head small at 64×64
    and 128×128), flattened, dropout, one sigmoid per attribute."""
    import keras
    from keras import layers

    x = features
    if size > 32:
        x = layers.AveragePooling2D(size // 32)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3, seed=seed)(x)
    return layers.Dense(outputs, activation="sigmoid", name="attributes",
                        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 10))(x)


def build_judge(size: int, channels: int, outputs: int, seed: int = 0):
    """The independent judge: a second small CNN, one sigmoid per attribute, built differently from
    `build_classifier` so that the two do not share an architecture's blind spots — strided convolutions instead of
    max pooling, a 5×5 first kernel, batch normalisation and ReLU instead of plain LeakyReLU, wider layers. Input:
    images in [-1, 1]. It is trained on the other half of the real examples with another seed (`judge_half`)."""
    import keras
    from keras import layers

    inputs = keras.Input((size, size, channels), name="image")
    x = inputs
    for i, (filters, kernel) in enumerate(((48, 5), (96, 3), (160, 3))):
        x = layers.Conv2D(filters, kernel, strides=2, padding="same", use_bias=False,
                          kernel_initializer=keras.initializers.HeNormal(seed=seed + i), name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"norm{i}")(x)
        x = layers.ReLU()(x)
    return keras.Model(inputs, _attribute_head(x, size, outputs, seed), name="attribute_judge")


def _to_unit_range(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 127.5 - 1.0


def train_classifier(images: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int, learning_rate: float,
                     min_steps: int, seed: int, build: Callable[..., Any] = build_classifier):
    """Masked binary cross-entropy (labels −1 are ignored), horizontal flips as augmentation, seeded shuffles.
    `build` makes the network (`build_classifier`, or `build_judge` for the independent judge)."""
    import keras
    import tensorflow as tf

    model = build(images.shape[1], images.shape[3], y.shape[1], seed)
    optimizer = keras.optimizers.Adam(learning_rate)

    @tf.function
    def step(x, target):
        mask = tf.cast(target >= 0.0, tf.float32)
        with tf.GradientTape() as tape:
            p = tf.clip_by_value(model(x, training=True), 1e-6, 1.0 - 1e-6)
            bce = -(target * tf.math.log(p) + (1.0 - target) * tf.math.log(1.0 - p))
            loss = tf.reduce_sum(bce * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    started = time.monotonic()
    rng = np.random.default_rng(seed)
    n = len(images)
    batch_size = min(batch_size, n)
    steps_per_epoch = max(1, n // batch_size)
    total = max(epochs * steps_per_epoch, min_steps)
    loss = float("nan")
    done = 0
    while done < total:
        order = rng.permutation(n)
        for b in range(steps_per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            x = images[idx]
            flip = rng.random(len(idx)) < 0.5
            x = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
            loss = float(step(tf.constant(_to_unit_range(x)), tf.constant(y[idx])))
            done += 1
            if done >= total:
                break
    return model, {"steps": total, "final_loss": loss, "batch_size": batch_size, "examples": int(n),
                   "seconds": round(time.monotonic() - started, 1)}


def classify(model, images_unit: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Classifier scores [N, A] for images in [-1, 1]."""
    import tensorflow as tf

    out = [np.asarray(model(tf.constant(images_unit[i:i + batch_size]), training=False))
           for i in range(0, len(images_unit), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), np.float32)


def heldout_metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Accuracy of one attribute on held-out real examples (unknown labels skipped). Balanced accuracy = the mean of
    the true-positive and true-negative rates: a classifier that always says "no" to a rare attribute scores 0.5."""
    known = y >= 0
    y, pred = y[known] > 0.5, scores[known] >= threshold
    if not len(y):
        return {"n": 0, "accuracy": None, "balanced_accuracy": None, "positives": 0}
    tpr = float(np.mean(pred[y])) if y.any() else None
    tnr = float(np.mean(~pred[~y])) if (~y).any() else None
    rates = [r for r in (tpr, tnr) if r is not None]
    return {"n": int(len(y)), "positives": int(y.sum()), "accuracy": round(float(np.mean(pred == y)), 4),
            "balanced_accuracy": round(float(np.mean(rates)), 4),
            "true_positive_rate": None if tpr is None else round(tpr, 4),
            "true_negative_rate": None if tnr is None else round(tnr, 4)}


# -- the exported attribute classifier ---------------------------------------------------------------------------------
def export_attribute_classifier(model, names: Sequence[str], out_dir: str, info: Mapping[str, Any]) -> str:
    """Write the Keras attribute classifier as a SavedModel (signature `serving_default`: `images` float32
    [N, H, W, C] in [-1, 1] → `scores` float32 [N, A]) with `assets.extra/attributes.json` (format
    dcgan-attribute-classifier/1: the attribute names in score order, threshold, held-out metrics, co-occurrence of
    the real labels). Written to a temporary sibling and renamed into place (object stores: uploaded, the
    SavedModel's .pb last)."""
    import tempfile

    import tensorflow as tf

    from dcgan.export import _tf_variable

    size, _, channels = info["image_shape"]

    class AttributeClassifierModule(tf.Module):
        def __init__(self):
            super().__init__(name="attribute_classifier")
            self.classifier_variables = [_tf_variable(v) for v in model.variables]

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, channels], tf.float32, name="images")])
        def serving_default(self, images):
            with tf.control_dependencies([tf.debugging.assert_all_finite(images, "images must be finite")]):
                images = tf.identity(images)
            return {"scores": tf.cast(model(images, training=False), tf.float32)}

    module = AttributeClassifierModule()
    meta = {"format": CLASSIFIER_FORMAT, "attributes": list(names), "input": "images in [-1, 1]", **info}
    with tempfile.TemporaryDirectory(prefix="dcgan-classifier-") as local:
        folder = os.path.join(local, "classifier")
        tf.saved_model.save(module, folder, signatures={"serving_default": module.serving_default})
        os.makedirs(os.path.join(folder, "assets.extra"), exist_ok=True)
        with open(os.path.join(folder, CLASSIFIER_INFO), "w") as f:
            json.dump(meta, f, indent=1)
        if fileio.is_remote(out_dir):
            if fileio.exists(out_dir):
                fileio.remove_tree(out_dir)
            return fileio.upload_tree(folder, out_dir)
        import shutil

        out_dir = os.path.abspath(out_dir)
        os.makedirs(os.path.dirname(out_dir), exist_ok=True)
        tmp = os.path.join(os.path.dirname(out_dir), f".{os.path.basename(out_dir)}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(folder, tmp)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
        return out_dir


class AttributeClassifier:
    """An exported attribute classifier, loaded without any training code: `names`, `threshold`, `info` (its
    attributes.json) and `scores(images)` for images in [-1, 1]."""

    def __init__(self, path: str):
        import tensorflow as tf

        info_path = fileio.join(path, CLASSIFIER_INFO)
        if not fileio.exists(fileio.join(path, "saved_model.pb")) or not fileio.exists(info_path):
            raise DirectionsFileError(f"{path} is not an exported attribute classifier (no saved_model.pb and "
                                      f"{CLASSIFIER_INFO})")
        with fileio.open_file(info_path) as f:
            self.info = json.load(f)
        if self.info.get("format") != CLASSIFIER_FORMAT:
            raise DirectionsFileError(f"{info_path} is not a {CLASSIFIER_FORMAT} file")
        self.path = path
        self.names: list[str] = list(self.info["attributes"])
        self.threshold = float(self.info.get("threshold", 0.5))
        self._module = tf.saved_model.load(path)
        self._signature = self._module.signatures["serving_default"]

    def scores(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        import tensorflow as tf

        out = [self._signature(images=tf.constant(images[i:i + batch_size], tf.float32))["scores"].numpy()
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.names)), np.float32)
