"""Attribute directions in z: which way to move a latent vector to add glasses, a smile, facial hair, a hair colour.

The recipe (a supervised version of the DCGAN paper's §6.3 vector arithmetic):

1. Train a small multi-label attribute classifier (Keras) on the *real* labelled examples — the TFRecords' `attr/<name>`
   labels (dcgan.schema). Binary attributes are derived from the labels: every 0/1 flag (the avatars' CelebA-named
   flags, CelebA's own ±1 flags) plus a few derived from the avatars' parts (see `derive_attributes`). Accuracy is
   measured on held-out real examples (the eval split, else a hashed 20 % of the data).
2. Generate many samples z ~ N(0, I) with the exported generator and label them with the classifier.
3. direction = mean z(with) − mean z(without), scaled to unit length (dcgan.latent.unit_direction). Because z ~ N(0, I),
   moving a face by `amount` along a unit direction moves its projection by `amount` standard deviations.
4. Report how well each direction works: on *fresh* samples (another seed), the classifier's mean score for the
   attribute after moving by each amount (±1, ±2, ±3), its change from amount 0, the share of faces with the
   attribute, and the other attributes that change most along the way (entanglement).

The result is stored beside the SavedModel as `<saved_model_dir>/assets.extra/directions.json` (format
`dcgan-directions/1`), so every served version carries its own directions; the web studio reads it from there.
This module imports TensorFlow/Keras only inside the functions that need them (reading a directions file is light).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dcgan import fileio
from dcgan.errors import DataError, DcganError
from dcgan.fileio import write_json_atomic

log = logging.getLogger(__name__)

FORMAT = "dcgan-directions/1"
DIRECTIONS_FILE = os.path.join("assets.extra", "directions.json")
DEFAULT_AMOUNTS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)
FLAG_VALUES = {"1": True, "0": False, "-1": False}  # ingest stores CelebA's ±1 flags as "1"/"0"; accept "-1" too
NONE = "none"  # the avatars' "absent" part label


class NoAttributeLabels(DataError):
    """The data carries no usable attribute labels, so no attribute direction can be computed."""


class DirectionsFileError(DcganError, ValueError):
    """A directions.json that cannot be used (missing fields, wrong z_dim, not finite)."""


# -- configuration ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DirectionsConfig:
    samples: int = 4000            # generated samples labelled by the classifier to fit the directions
    eval_samples: int = 256        # fresh generated samples on which the effect of each direction is measured
    amounts: tuple[float, ...] = DEFAULT_AMOUNTS
    epochs: int = 12               # classifier training epochs over the real training examples (flips doubled)
    min_steps: int = 300           # ... but at least this many optimizer steps (small data sets)
    batch_size: int = 64
    learning_rate: float = 1e-3
    max_examples: int = 20_000     # real examples read at most (train + held-out)
    heldout_fraction: float = 0.2  # held-out share when the data has no eval split
    min_positives: int = 10        # an attribute needs this many positive and negative training examples
    min_group: int = 10            # generated samples needed on each side; fewer → top/bottom decile split
    threshold: float = 0.5         # classifier score at which a face "has" the attribute
    seed: int = 0                  # fit samples use this seed, effect samples seed + 1, the classifier seed + 2

    def validate(self) -> DirectionsConfig:
        for name in ("samples", "eval_samples", "epochs", "batch_size", "max_examples", "min_positives", "min_group"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"directions: {name}={getattr(self, name)} must be a positive integer")
        if self.min_steps < 0:
            raise ValueError(f"directions: min_steps={self.min_steps} must be ≥ 0")
        if self.samples < 2 * self.min_group:
            raise ValueError(f"directions: samples={self.samples} must be at least 2 x min_group={self.min_group}")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"directions: heldout_fraction={self.heldout_fraction} must be in (0, 1)")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"directions: threshold={self.threshold} must be in (0, 1)")
        if not self.amounts or not all(math.isfinite(a) for a in self.amounts):
            raise ValueError(f"directions: amounts={self.amounts} must be finite numbers")
        return self

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DirectionsConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"directions: unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        values = dict(values)
        if "amounts" in values:
            values["amounts"] = tuple(float(a) for a in values["amounts"])
        return cls(**values).validate()


# -- attributes from labels -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BinaryAttribute:
    """A yes/no attribute computed from an example's text labels; `value` returns None when it is unknown."""

    name: str
    definition: str
    value: Callable[[Mapping[str, str]], bool | None] = field(compare=False, repr=False)


def _flag(name: str, invert: bool = False) -> Callable[[Mapping[str, str]], bool | None]:
    def value(labels: Mapping[str, str]) -> bool | None:
        v = FLAG_VALUES.get(str(labels.get(name, "")).strip())
        return None if v is None else (v != invert)
    return value


def _part_present(name: str) -> Callable[[Mapping[str, str]], bool | None]:
    def value(labels: Mapping[str, str]) -> bool | None:
        if name not in labels:
            return None
        return labels[name] != NONE
    return value


# Flags whose negation reads better as a slider ("more beard", not "more no-beard").
_INVERTED_FLAGS = {"No_Beard": "Beard"}
# Attributes derived from the avatars' part labels (dcgan.avatars), when the data has them and no flag says the same.
_DERIVED_PARTS = {"Facial_Hair": ("facial_hair", "attr/facial_hair != none (a beard or a moustache)")}


def derive_attributes(label_dicts: Sequence[Mapping[str, str]]) -> list[BinaryAttribute]:
    """The binary attributes the labels support: every label whose values are all 0/1 (or ±1) flags, plus the
    derived avatar attributes. Returns [] when there are no labels."""
    values: dict[str, set[str]] = {}
    for labels in label_dicts:
        for name, value in labels.items():
            values.setdefault(name, set()).add(str(value).strip())
    out: list[BinaryAttribute] = []
    for name in sorted(values):
        if values[name] and values[name] <= set(FLAG_VALUES):
            if name in _INVERTED_FLAGS:
                out.append(BinaryAttribute(_INVERTED_FLAGS[name], f"attr/{name} == 0", _flag(name, invert=True)))
            else:
                out.append(BinaryAttribute(name, f"attr/{name} == 1", _flag(name)))
    taken = {a.name for a in out}
    for name, (part, definition) in _DERIVED_PARTS.items():
        if part in values and name not in taken and len(values[part]) > 1:
            out.append(BinaryAttribute(name, definition, _part_present(part)))
    return sorted(out, key=lambda a: a.name)


def label_matrix(label_dicts: Sequence[Mapping[str, str]], attributes: Sequence[BinaryAttribute]) -> np.ndarray:
    """[N, A] float32: 1 = has it, 0 = has not, −1 = unknown (masked out of the classifier's loss)."""
    y = np.full((len(label_dicts), len(attributes)), -1.0, np.float32)
    for i, labels in enumerate(label_dicts):
        for j, attribute in enumerate(attributes):
            v = attribute.value(labels)
            if v is not None:
                y[i, j] = 1.0 if v else 0.0
    return y


# -- real labelled data -----------------------------------------------------------------------------------------------
@dataclass
class LabelledData:
    images: np.ndarray            # uint8 [N, size, size, C]
    labels: list[dict[str, str]]
    heldout: np.ndarray           # bool [N]: not used to train the classifier
    description: str
    heldout_rule: str


def _expand(paths: Sequence[str], required: bool = True) -> list[str]:
    """TFRecord files of paths/globs/folders. Optional ones (the held-out split) may match nothing."""
    from dcgan.data import resolve_data

    files: list[str] = []
    for path in paths:
        try:
            resolved = resolve_data(path)
        except DataError:
            if required:
                raise
            log.info("directions: %s holds no examples; holding out a share of the training data instead", path)
            continue
        if resolved.kind != "tfrecord":
            raise NoAttributeLabels(f"{path!r} holds image files, not TFRecords: attribute labels come from the "
                                    "`attr/<name>` features of ingested examples (dcgan ingest)")
        files += resolved.files
    return files


def resolve_labelled_files(data: str) -> tuple[list[str], list[str]]:
    """`--data` of `dcgan directions`: an Examples directory (its train split trains the classifier, its eval split
    is held out), or TFRecord files / globs / folders (comma-separated; a hashed share is held out)."""
    parts = [p.strip() for p in data.split(",") if p.strip()]
    if len(parts) == 1 and os.path.isdir(os.path.join(parts[0], "Split-train")):
        train = _expand([os.path.join(parts[0], "Split-train")])
        eval_dir = os.path.join(parts[0], "Split-eval")
        return train, (_expand([eval_dir]) if os.path.isdir(eval_dir) else [])
    if not parts:
        raise DataError("no data given: pass --data with an Examples directory or TFRecord files")
    return _expand(parts), []


def _heldout_by_hash(key: str, fraction: float) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def load_labelled_data(train_files: Sequence[str], eval_files: Sequence[str] = (), *, size: int, channels: int = 3,
                       max_examples: int = 20_000, heldout_fraction: float = 0.2) -> LabelledData:
    """Read labelled examples (image + `attr/` labels) at the generator's resolution."""
    from dcgan import images as imlib
    from dcgan import schema

    train_files, eval_files = _expand(train_files), _expand(eval_files, required=False) if eval_files else []
    if not train_files:
        raise DataError("no TFRecord files to read attribute labels from")
    budget_eval = min(max_examples // 5, max_examples) if eval_files else 0
    train = schema.read_examples(train_files, limit=max_examples - budget_eval)
    held = schema.read_examples(eval_files, limit=budget_eval) if eval_files else []
    examples = train + held
    if not any(e["attributes"] for e in examples):
        raise NoAttributeLabels(f"the {len(examples)} examples of {len(train_files) + len(eval_files)} file(s) carry "
                                "no attribute labels (no `attr/<name>` features)")
    if eval_files:
        heldout = np.array([False] * len(train) + [True] * len(held))
        rule = f"the eval split ({len(held)} examples)"
    else:
        heldout = np.array([_heldout_by_hash(str(e["sha256"] or e["id"]), heldout_fraction) for e in examples])
        rule = f"a {heldout_fraction:.0%} share of the examples chosen by hash ({int(heldout.sum())} examples)"
    pictures = []
    for e in examples:
        image = imlib.decode_png(e["image"])
        if image.shape[0] != size or image.shape[1] != size:
            image = imlib.resize(image, size)
        if channels == 1:
            image = np.round(image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
            image = image.clip(0, 255).astype(np.uint8)
        pictures.append(image)
    return LabelledData(np.stack(pictures), [dict(e["attributes"]) for e in examples], heldout,
                        f"{len(examples)} examples from {len(train_files) + len(eval_files)} TFRecord file(s)", rule)


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
    if size > 32:  # keep the classifier head small at 64×64 and 128×128
        x = layers.AveragePooling2D(size // 32)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.3, seed=seed)(x)
    out = layers.Dense(outputs, activation="sigmoid", name="attributes",
                       kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 10))(x)
    return keras.Model(inputs, out, name="attribute_classifier")


def _to_unit_range(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 127.5 - 1.0


def train_classifier(images: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int, learning_rate: float,
                     min_steps: int, seed: int):
    """Masked binary cross-entropy (labels −1 are ignored), horizontal flips as augmentation, seeded shuffles."""
    import keras
    import tensorflow as tf

    model = build_classifier(images.shape[1], images.shape[3], y.shape[1], seed)
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
    return model, {"steps": total, "final_loss": loss, "batch_size": batch_size}


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


# -- directions from labelled samples ---------------------------------------------------------------------------------
def fit_direction(z: np.ndarray, scores: np.ndarray, threshold: float = 0.5,
                  min_group: int = 10) -> tuple[np.ndarray, dict[str, Any]]:
    """Unit direction mean z(with) − mean z(without) for one attribute's scores [N]. When fewer than `min_group`
    samples fall on one side of the threshold, the top and bottom deciles by score stand in for with/without."""
    from dcgan.latent import unit_direction

    with_attr = scores >= threshold
    n_with = int(with_attr.sum())
    split = "threshold"
    if n_with < min_group or len(scores) - n_with < min_group:
        k = max(min_group, len(scores) // 10)
        order = np.argsort(scores, kind="stable")
        with_attr = np.zeros(len(scores), bool)
        with_attr[order[-k:]] = True
        without = np.zeros(len(scores), bool)
        without[order[:k]] = True
        split = "deciles"
    else:
        without = ~with_attr
    vector, norm = unit_direction(z[with_attr], z[without])
    return vector, {"split": split, "with": int(with_attr.sum()), "without": int(without.sum()),
                    "raw_norm": round(norm, 4)}


def measure_effect(generate: Callable[[np.ndarray], np.ndarray], score: Callable[[np.ndarray], np.ndarray],
                   z: np.ndarray, vectors: np.ndarray, amounts: Sequence[float], names: Sequence[str],
                   threshold: float = 0.5) -> list[dict[str, Any]]:
    """For each direction d_j: the classifier scores of G(z + a·d_j) for every amount a.

    `generate` maps z [N, z_dim] → images in [-1, 1]; `score` maps images → scores [N, A]. Returns, per direction,
    the mean score of its own attribute at each amount, the change from amount 0, the share of faces at or above
    the threshold, and the three other attributes whose mean score moves most at the largest amount."""
    base = score(generate(z))
    out = []
    top = _side_effect_amount(amounts)
    for j in range(len(names)):
        mean, rate, at_top = [], [], None
        for a in amounts:
            s = base if a == 0 else score(generate((z + a * vectors[j][None, :]).astype(np.float32)))
            mean.append(float(np.mean(s[:, j])))
            rate.append(float(np.mean(s[:, j] >= threshold)))
            if a == top:
                at_top = s
        zero = float(np.mean(base[:, j]))
        others = {}
        if at_top is not None:
            change = np.mean(at_top, 0) - np.mean(base, 0)
            for k in np.argsort(-np.abs(change)):
                if k != j and len(others) < 3:
                    others[names[k]] = round(float(change[k]), 4)
        out.append({
            "amounts": [float(a) for a in amounts],
            "mean_score": [round(v, 4) for v in mean],
            "delta": [round(v - zero, 4) for v in mean],
            "positive_rate": [round(v, 4) for v in rate],
            "side_effects_at": float(top),
            "side_effects": others,
        })
    return out


def _side_effect_amount(amounts: Sequence[float]) -> float:
    """The amount at which side effects are reported: the largest positive one (else the largest in size)."""
    positive = [a for a in amounts if a > 0]
    return max(positive) if positive else max(amounts, key=abs)


# -- the whole computation --------------------------------------------------------------------------------------------
def compute_directions(saved_model_dir: str, train_files: Sequence[str], eval_files: Sequence[str] = (),
                       config: DirectionsConfig | None = None) -> dict[str, Any]:
    """Train the classifier on the real labelled data, fit a direction per attribute on generated samples, measure
    the effect on fresh samples. Returns the directions.json document (not written; see `write_directions`)."""
    from dcgan import images as imlib
    from dcgan.export import LoadedGenerator

    config = (config or DirectionsConfig()).validate()
    started = time.monotonic()
    generator = LoadedGenerator(saved_model_dir)
    height, _, channels = generator.metadata.get("image_shape") or _probe_shape(generator)
    data = load_labelled_data(train_files, eval_files, size=int(height), channels=int(channels),
                              max_examples=config.max_examples, heldout_fraction=config.heldout_fraction)
    attributes = derive_attributes(data.labels)
    if not attributes:
        names = sorted({k for labels in data.labels for k in labels})
        raise NoAttributeLabels(f"none of the labels ({', '.join(names) or 'none'}) is a yes/no attribute "
                                "(0/1 or ±1 flags, or the avatars' facial_hair)")
    y = label_matrix(data.labels, attributes)
    train = ~data.heldout
    skipped: dict[str, str] = {}
    keep = []
    for j, attribute in enumerate(attributes):
        pos, neg = int((y[train, j] == 1).sum()), int((y[train, j] == 0).sum())
        if pos < config.min_positives or neg < config.min_positives:
            skipped[attribute.name] = (f"too few training examples on one side ({pos} with, {neg} without; "
                                       f"need {config.min_positives} each)")
        else:
            keep.append(j)
    if not keep:
        raise NoAttributeLabels("no attribute has enough positive and negative examples: "
                                + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    attributes = [attributes[j] for j in keep]
    y = y[:, keep]
    names = [a.name for a in attributes]
    log.info("directions: training the attribute classifier on %d real examples (%s)", int(train.sum()),
             ", ".join(names))
    model, training = train_classifier(data.images[train], y[train], epochs=config.epochs,
                                       batch_size=config.batch_size, learning_rate=config.learning_rate,
                                       min_steps=config.min_steps, seed=config.seed + 2)
    heldout_scores = classify(model, _to_unit_range(data.images[data.heldout])) if data.heldout.any() else None

    def generate(z: np.ndarray) -> np.ndarray:  # what a viewer sees: the generator's output quantised to uint8
        return _to_unit_range(imlib.to_uint8(generator.images(z)))

    def score(images: np.ndarray) -> np.ndarray:
        return classify(model, images)

    z_dim = generator.z_dim
    z_fit = np.random.default_rng(config.seed).standard_normal((config.samples, z_dim)).astype(np.float32)
    log.info("directions: labelling %d generated samples", config.samples)
    fit_scores = score(generate(z_fit))
    vectors, fits = [], []
    for j in range(len(attributes)):
        vector, info = fit_direction(z_fit, fit_scores[:, j], config.threshold, config.min_group)
        vectors.append(vector)
        fits.append(info)
    vectors_arr = np.stack(vectors)
    z_eval = np.random.default_rng(config.seed + 1).standard_normal((config.eval_samples, z_dim)).astype(np.float32)
    log.info("directions: measuring the effect of %d directions on %d fresh samples", len(names), config.eval_samples)
    effects = measure_effect(generate, score, z_eval, vectors_arr, config.amounts, names, config.threshold)

    result_attributes: dict[str, Any] = {}
    for j, attribute in enumerate(attributes):
        real = y[train, j]
        known_real = real[real >= 0]
        result_attributes[attribute.name] = {
            "definition": attribute.definition,
            "vector": [round(float(v), 7) for v in vectors_arr[j]],
            "classifier": (heldout_metrics(y[data.heldout, j], heldout_scores[:, j], config.threshold)
                           if heldout_scores is not None else {"n": 0}),
            "positive_rate": {
                "real": round(float(np.mean(known_real > 0.5)), 4) if len(known_real) else None,
                "generated": round(float(np.mean(fit_scores[:, j] >= config.threshold)), 4),
            },
            "fit": fits[j],
            "effect": effects[j],
        }
    return {
        "format": FORMAT,
        "z_dim": int(z_dim),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {"saved_model_dir": (saved_model_dir if fileio.is_remote(saved_model_dir)
                                      else os.path.abspath(saved_model_dir)),
                  "image_shape": [int(height), int(height), int(channels)],
                  "step": generator.metadata.get("step")},
        "data": {"description": data.description, "train_examples": int(train.sum()),
                 "heldout_examples": int(data.heldout.sum()), "heldout": data.heldout_rule},
        "classifier": {"architecture": "3 x (conv3x3 + LeakyReLU + maxpool) -> dropout -> sigmoid per attribute",
                       "input": f"{height}x{height}x{channels} in [-1, 1]", **training},
        "method": ("direction = normalise(mean z(with) - mean z(without)) over generated samples labelled by the "
                   "classifier; effect measured on fresh samples"),
        "config": {**asdict(config), "amounts": list(config.amounts)},
        "samples": {"fit": config.samples, "fit_seed": config.seed, "eval": config.eval_samples,
                    "eval_seed": config.seed + 1, "z": "numpy default_rng(seed).standard_normal"},
        "amounts": [float(a) for a in config.amounts],
        "attributes": result_attributes,
        "skipped": skipped,
        "seconds": round(time.monotonic() - started, 1),
    }


def _probe_shape(generator) -> list[int]:
    return list(generator.images(np.zeros((1, generator.z_dim), np.float32)).shape[1:])


def write_directions(saved_model_dir: str, result: Mapping[str, Any], path: str | None = None) -> str:
    """Write directions.json (atomically) to `path`, by default `<saved_model_dir>/assets.extra/directions.json`."""
    path = path or fileio.join(saved_model_dir, DIRECTIONS_FILE)
    if not fileio.is_remote(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return write_json_atomic(path, result, indent=1)


def compute_and_store_directions(saved_model_dir: str, train_files: Sequence[str], eval_files: Sequence[str] = (),
                                 config: DirectionsConfig | Mapping[str, Any] | None = None) -> tuple[str, dict]:
    """What the pipeline's Trainer calls after the export: compute the directions of the SavedModel from the
    labelled training data and store them beside it. Raises NoAttributeLabels when the data has no usable labels."""
    if isinstance(config, Mapping):
        config = DirectionsConfig.from_dict(config)
    result = compute_directions(saved_model_dir, train_files, eval_files, config)
    return write_directions(saved_model_dir, result), result


# -- reading ----------------------------------------------------------------------------------------------------------
def read_directions(path: str, z_dim: int | None = None) -> dict[str, Any]:
    """Load and check a directions.json: known format, every vector of length z_dim, finite. Raises
    DirectionsFileError with the reason otherwise."""
    try:
        with fileio.open_file(path) as f:
            doc = json.load(f)
    except OSError as e:
        raise DirectionsFileError(f"cannot read {path}: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise DirectionsFileError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise DirectionsFileError(f"{path} is not a {FORMAT} file (format: {found!r})")
    dim = doc.get("z_dim")
    if not isinstance(dim, int) or dim <= 0:
        raise DirectionsFileError(f"{path}: z_dim must be a positive integer")
    if z_dim is not None and dim != z_dim:
        raise DirectionsFileError(f"{path} holds directions for z of length {dim}, but the model takes {z_dim}")
    attributes = doc.get("attributes")
    if not isinstance(attributes, dict):
        raise DirectionsFileError(f"{path}: 'attributes' must be an object")
    for name, entry in attributes.items():
        vector = entry.get("vector") if isinstance(entry, dict) else None
        if not isinstance(vector, list) or len(vector) != dim:
            raise DirectionsFileError(f"{path}: the vector of {name!r} must be a list of {dim} numbers")
        try:
            array = np.asarray(vector, np.float64)
        except (TypeError, ValueError) as e:
            raise DirectionsFileError(f"{path}: the vector of {name!r} must be a list of {dim} numbers") from e
        if not np.all(np.isfinite(array)):
            raise DirectionsFileError(f"{path}: the vector of {name!r} is not finite")
    return doc


def format_report(result: Mapping[str, Any]) -> str:
    """A text table: per attribute, held-out classifier accuracy, positive rates, and the score change at each
    amount (the effect)."""
    amounts = [a for a in result["amounts"] if a != 0]
    head = (f"{'attribute':<14} {'acc':>5} {'bal':>5} {'real+':>6} {'gen+':>6} "
            + " ".join(f"{a:>+6g}" for a in amounts)
            + f"   most entangled (at {_side_effect_amount(result['amounts']):+g})")
    lines = [head, "-" * len(head)]
    for name, entry in result["attributes"].items():
        c, rate, effect = entry["classifier"], entry["positive_rate"], entry["effect"]
        deltas = dict(zip(effect["amounts"], effect["delta"]))

        def pct(v):
            return "   -" if v is None else f"{v:.2f}"
        side = ", ".join(f"{k} {v:+.2f}" for k, v in effect["side_effects"].items())
        lines.append(f"{name:<14} {pct(c.get('accuracy')):>5} {pct(c.get('balanced_accuracy')):>5} "
                     f"{pct(rate['real']):>6} {pct(rate['generated']):>6} "
                     + " ".join(f"{deltas[a]:>+6.2f}" for a in amounts) + f"   {side}")
    for name, reason in result.get("skipped", {}).items():
        lines.append(f"{name:<14} skipped: {reason}")
    lines.append("acc/bal: accuracy / balanced accuracy on held-out real examples; real+/gen+: share with the "
                 "attribute (real data / generated); columns ±a: change of the mean classifier score after moving "
                 "fresh samples by a along the unit direction.")
    return "\n".join(lines)
