"""Attribute directions in z: which way to move a latent vector to add glasses, a smile, facial hair, a hair colour.

The recipe (a supervised version of the DCGAN paper's §6.3 vector arithmetic):

1. Train a small multi-label attribute classifier (Keras) on the *real* labelled examples — the TFRecords' `attr/<name>`
   labels (dcgan.schema). Binary attributes are derived from the labels: every 0/1 flag (the avatars' CelebA-named
   flags, CelebA's own ±1 flags) plus a few derived from the avatars' parts (see `derive_attributes`). Accuracy is
   measured on held-out real examples (the eval split, else a hashed 20 % of the data). Beside it, an independent
   *judge* — another architecture (`build_judge`), another seed, the other half of the training examples
   (`judge_half`) — is trained the same way and measured on the same held-out examples; it fits nothing and
   grades every direction, so an edit that fools the classifier it was fitted to does not pass by that alone.
2. Generate many samples z ~ N(0, I) with the exported generator and label them with the classifier.
3. direction = mean z(with) − mean z(without), scaled to unit length (dcgan.latent.unit_direction). Because z ~ N(0, I),
   moving a face by `amount` along a unit direction moves its projection by `amount` standard deviations.
4. Report how well each direction works: on *fresh* samples (another seed), the classifier's mean score for the
   attribute after moving by each amount (±1, ±2, ±3), its change from amount 0, the share of faces with the
   attribute, and the other attributes that change most along the way (entanglement).

Four kinds of direction (`kind` of each entry of `directions`):

- `mean_difference` — step 3 above.
- `boundary` — InterFaceGAN (Shen et al. 2020): the unit normal of a linear classifier (L2-regularised logistic
  regression, class-balanced) separating the generated samples' z by the attribute classifier's verdict.
- `conditional` — InterFaceGAN's conditional manipulation: the boundary normal with the normals of other attributes
  projected out, so moving along it leaves their (linear) scores unchanged. The stored one fixes every other
  attribute whose classifier is reliable (held-out balanced accuracy ≥ `reliable_accuracy`); any other choice is
  computed on request from the stored normals (`conditional_direction`; the studio's /api/directions/conditional).
- `sefa` — closed-form factorization (Shen & Zhou 2021), unsupervised: the top eigenvectors of AᵀA, A = the weights
  of G's first projection (the `project` Dense kernel, z → 4×4×C). No attribute; its effect lists what changes.

Quality (`grade_directions`, `measure_quality`, dcgan.edit_quality, bench/directions_quality.py): for every attribute
that both networks judge reliably, moving fresh faces by +2 (σ) along a direction: success by the judge and by the
classifier and their agreement, net leakage, churn (the share of faces whose verdict on another attribute flips),
beside a control row of random unit directions moved as far, and the linear ceiling (the best success any unit
direction could reach were the attribute linear in z — at +2σ, 0.9 needs a prevalence ≥ 0.24).

The result is stored beside the SavedModel as `<saved_model_dir>/assets.extra/directions.json` (format
`dcgan-directions/2`; /1 files, mean-difference only, are still read), so every served version carries its own
directions; the web studio reads it from there. The attribute classifier is exported beside it as its own SavedModel,
`assets.extra/attribute_classifier/` (signature `serving_default`: `images` float32 [N, H, W, C] in [-1, 1] →
`scores` [N, A]; names, threshold and the real labels' co-occurrence counts in its `assets.extra/attributes.json`),
so the studio can score faces (specify, then generate) without any training code; the judge likewise, in
`assets.extra/attribute_judge/` (the same format, `role` "judge").
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

FORMAT = "dcgan-directions/2"
FORMAT_V1 = "dcgan-directions/1"
DIRECTIONS_FILE = os.path.join("assets.extra", "directions.json")
CLASSIFIER_DIR = os.path.join("assets.extra", "attribute_classifier")
JUDGE_DIR = os.path.join("assets.extra", "attribute_judge")  # the independent judge, same format as the classifier
CLASSIFIER_FORMAT = "dcgan-attribute-classifier/1"
CLASSIFIER_INFO = os.path.join("assets.extra", "attributes.json")  # inside the classifier's SavedModel
KINDS = ("mean_difference", "boundary", "conditional", "sefa")
CLASSIFIER_ARCHITECTURE = "3 x (conv3x3 + LeakyReLU + maxpool) -> dropout -> sigmoid per attribute"
JUDGE_ARCHITECTURE = ("3 x (strided conv 5x5/3x3/3x3 + batch norm + ReLU), 48-96-160 filters -> dropout -> sigmoid "
                      "per attribute")
JUDGE_SPLIT = ("the training examples whose sha256('judge:' + example sha256) falls in the lower half train the judge, "
               "the others the classifier")
KIND_SUFFIX = {"mean_difference": "", "boundary": " · boundary", "conditional": " · conditional"}
DEFAULT_KIND = "mean_difference"  # the slider named after the attribute alone, the studio's first
# The effect is measured at these steps; the positive ones are the candidates for each slider's suggested step.
DEFAULT_AMOUNTS = (-3.0, -2.0, -1.0, 0.0, 1.0, 1.5, 2.0, 2.5, 3.0)
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
    epochs: int = 24               # training epochs of each network over its half of the real training examples
    min_steps: int = 300           # ... but at least this many optimizer steps (small data sets)
    batch_size: int = 64
    learning_rate: float = 1e-3
    max_examples: int = 20_000     # real examples read at most (train + held-out)
    heldout_fraction: float = 0.2  # held-out share when the data has no eval split
    min_positives: int = 10        # an attribute needs this many positive and negative training examples
    min_group: int = 10            # generated samples needed on each side; fewer → top/bottom decile split
    threshold: float = 0.5         # classifier score at which a face "has" the attribute
    seed: int = 0                  # fit samples use this seed, effect samples seed + 1, the classifier seed + 2
    boundary_l2: float = 1.0       # L2 penalty of the boundary's logistic regression (on the normal, not the bias)
    sefa_components: int = 5       # SeFa directions stored (top eigenvectors of AᵀA)
    reliable_accuracy: float = 0.8  # held-out balanced accuracy from which an attribute is judged (quality, fixing)
    quality_amount: float = 2.0    # the step (σ) at which success, leakage and churn are measured
    judge: bool = True             # train the independent judge on the other half of the examples; it grades
    control_directions: int = 8    # random unit directions of the quality table's control row (seed + 4)
    success_goal: float = 0.85     # quality goals: success by the judge at +quality_amount ...
    churn_ratio_goal: float = 1.5  # ... with churn at most this multiple of the random control's
    suggest_success: float = 0.9   # a slider's suggested step: the smallest at which the classifier sees this share

    def validate(self) -> DirectionsConfig:
        for name in ("samples", "eval_samples", "epochs", "batch_size", "max_examples", "min_positives", "min_group",
                     "sefa_components", "control_directions"):
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
        if not (math.isfinite(self.boundary_l2) and self.boundary_l2 > 0):
            raise ValueError(f"directions: boundary_l2={self.boundary_l2} must be a positive number")
        if not 0.5 <= self.reliable_accuracy <= 1.0:
            raise ValueError(f"directions: reliable_accuracy={self.reliable_accuracy} must be in [0.5, 1]")
        if not (math.isfinite(self.quality_amount) and self.quality_amount > 0):
            raise ValueError(f"directions: quality_amount={self.quality_amount} must be a positive number")
        for name in ("success_goal", "suggest_success"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"directions: {name}={getattr(self, name)} must be in (0, 1]")
        if not (math.isfinite(self.churn_ratio_goal) and self.churn_ratio_goal > 0):
            raise ValueError(f"directions: churn_ratio_goal={self.churn_ratio_goal} must be a positive number")
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
    keys: list[str] = field(default_factory=list)  # per example: its sha256 (else id), what the splits hash


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


def _hash_unit(key: str) -> float:
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def _heldout_by_hash(key: str, fraction: float) -> bool:
    return _hash_unit(key) < fraction


def judge_half(keys: Sequence[str]) -> np.ndarray:
    """bool [N]: the examples that train the judge; the others train the fitting classifier. Chosen by a hash of
    each example's key salted with "judge:", so the two halves are disjoint, reproducible, independent of the order
    of the files and of the held-out rule (a different hash)."""
    return np.array([_hash_unit("judge:" + k) < 0.5 for k in keys], bool)


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
    keys = [str(e["sha256"] or e["id"]) for e in examples]
    if eval_files:
        heldout = np.array([False] * len(train) + [True] * len(held))
        rule = f"the eval split ({len(held)} examples)"
    else:
        heldout = np.array([_heldout_by_hash(k, heldout_fraction) for k in keys])
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
                        f"{len(examples)} examples from {len(train_files) + len(eval_files)} TFRecord file(s)", rule,
                        keys)


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


# -- directions from labelled samples ---------------------------------------------------------------------------------
def fit_direction(z: np.ndarray, scores: np.ndarray, threshold: float = 0.5,
                  min_group: int = 10) -> tuple[np.ndarray, dict[str, Any]]:
    """Unit direction mean z(with) − mean z(without) for one attribute's scores [N]. When fewer than `min_group`
    samples fall on one side of the threshold, the top and bottom deciles by score stand in for with/without."""
    from dcgan.latent import unit_direction

    with_attr, without, split = _sides(scores, threshold, min_group)
    vector, norm = unit_direction(z[with_attr], z[without])
    return vector, {"split": split, "with": int(with_attr.sum()), "without": int(without.sum()),
                    "raw_norm": round(norm, 4)}


def measure_effect(generate: Callable[[np.ndarray], np.ndarray], score: Callable[[np.ndarray], np.ndarray],
                   z: np.ndarray, vectors: np.ndarray, amounts: Sequence[float], names: Sequence[str],
                   threshold: float = 0.5, attribute_of: Sequence[int | None] | None = None,
                   judged: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """For each direction d_j: the classifier scores of G(z + a·d_j) for every amount a.

    `generate` maps z [N, z_dim] → images in [-1, 1]; `score` maps images → scores [N, A] (columns = `names`).
    `attribute_of[j]` is the column of direction j's own attribute (None for an unsupervised direction; by default
    direction j is attribute j). Returns, per direction: the mean score of its own attribute at each amount, the change
    from amount 0 and the share of faces at or above the threshold (attribute directions only); the prevalence of
    every attribute at each amount; the three other attributes whose mean score moves most at the largest amount;
    and with `judged` (columns), the churn at each amount: the share of faces whose verdict on a judged column
    other than its own flips (dcgan.edit_quality)."""
    from dcgan.edit_quality import edit_quality

    if attribute_of is None:
        attribute_of = list(range(len(vectors)))
    from dcgan.edit_quality import score_pictures

    z = np.asarray(z, np.float32)
    vectors = np.asarray(vectors, np.float32)
    moving = [a for a in amounts if a != 0]
    # Every direction at every amount in one array of z, pictured and scored in a few large calls.
    shifted = z[None, None] + np.asarray(moving, np.float32)[None, :, None, None] * vectors[:, None, None, :]
    scores = score_pictures(generate, {"score": score}, np.concatenate([z, shifted.reshape(-1, z.shape[1])]))["score"]
    base, moved = scores[:len(z)], scores[len(z):].reshape(len(vectors), len(moving), len(z), -1)
    out = []
    top = _side_effect_amount(amounts)
    for j, own in enumerate(attribute_of):
        per_amount = [base if a == 0 else moved[j, moving.index(a)] for a in amounts]
        at_top = per_amount[list(amounts).index(top)]
        change = np.mean(at_top, 0) - np.mean(base, 0)
        others = {}
        for k in np.argsort(-np.abs(change), kind="stable"):
            if k != own and len(others) < 3:
                others[names[k]] = round(float(change[k]), 4)
        entry: dict[str, Any] = {"amounts": [float(a) for a in amounts]}
        if own is not None:
            mean = [float(np.mean(s[:, own])) for s in per_amount]
            zero = float(np.mean(base[:, own]))
            entry.update({
                "mean_score": [round(v, 4) for v in mean],
                "delta": [round(v - zero, 4) for v in mean],
                "positive_rate": [round(float(np.mean(s[:, own] >= threshold)), 4) for s in per_amount],
            })
        entry.update({
            "side_effects_at": float(top),
            "side_effects": others,
            "prevalence": {name: [round(float(np.mean(s[:, k] >= threshold)), 4) for s in per_amount]
                           for k, name in enumerate(names)},
        })
        if judged is not None:
            entry["churn"] = [edit_quality(base >= threshold, s >= threshold, own, judged, names)["churn"]
                              for s in per_amount]
        out.append(entry)
    return out


def suggested_amount(effect: Mapping[str, Any], target: float,
                     control_churn: Mapping[float, float | None] | None = None,
                     churn_limit: float | None = None) -> float | None:
    """The step a slider suggests for adding its attribute, chosen by the classifier that fitted the direction on
    the effect's fresh samples (the judge stays out of the choice): the smallest positive measured amount at which
    at least `target` of the faces have the attribute and — given the effect's `churn` and the random control's
    churn at each amount (`control_churn`) — whose churn is at most `churn_limit` × the control's; else the smallest
    that reaches the target; else the positive amount where most have it (the slider's reach). No further than
    needed: every step also changes other things. None for a direction without an attribute or positive amounts."""
    amounts = effect.get("amounts", [])
    rates = [(a, r) for a, r in zip(amounts, effect.get("positive_rate") or []) if a > 0]
    if not rates:
        return None
    reached = [a for a, r in rates if r >= target]
    if not reached:
        return float(max(rates, key=lambda ar: (ar[1], -ar[0]))[0])
    churn = dict(zip(amounts, effect.get("churn") or []))
    if control_churn is not None and churn_limit is not None:
        calm = [a for a in reached if churn.get(a) is not None and control_churn.get(a)
                and churn[a] <= churn_limit * control_churn[a]]
        if calm:
            return float(min(calm))
    return float(min(reached))


def _side_effect_amount(amounts: Sequence[float]) -> float:
    """The amount at which side effects are reported: the largest positive one (else the largest in size)."""
    positive = [a for a in amounts if a > 0]
    return max(positive) if positive else max(amounts, key=abs)


# -- boundary, conditional and SeFa directions ------------------------------------------------------------------------
def _sides(scores: np.ndarray, threshold: float, min_group: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Masks (with, without) of the samples: by the threshold, or the top/bottom deciles by score when one side has
    fewer than `min_group` samples."""
    with_attr = scores >= threshold
    n_with = int(with_attr.sum())
    if n_with >= min_group and len(scores) - n_with >= min_group:
        return with_attr, ~with_attr, "threshold"
    k = max(min_group, len(scores) // 10)
    order = np.argsort(scores, kind="stable")
    with_attr = np.zeros(len(scores), bool)
    with_attr[order[-k:]] = True
    without = np.zeros(len(scores), bool)
    without[order[:k]] = True
    return with_attr, without, "deciles"


def fit_boundary(z: np.ndarray, scores: np.ndarray, threshold: float = 0.5, min_group: int = 10, l2: float = 1.0,
                 iterations: int = 50) -> tuple[np.ndarray, dict[str, Any]]:
    """InterFaceGAN's boundary: the unit normal n of a linear classifier w·z + b separating the samples that have
    the attribute (score ≥ threshold) from those that have not. Logistic regression fitted by Newton's method
    (exact, no learning rate), classes weighted to equal total weight, L2 penalty `l2` on w. Returns n and
    {split, with, without, accuracy (balanced, on the fit samples), offset = −b/|w| (where the boundary crosses the
    normal, in σ), iterations}."""
    with_attr, without, split = _sides(scores, threshold, min_group)
    keep = with_attr | without
    x = np.asarray(z[keep], np.float64)
    y = with_attr[keep].astype(np.float64)
    n, dim = x.shape
    weight = np.where(y > 0.5, n / (2.0 * max(y.sum(), 1.0)), n / (2.0 * max(n - y.sum(), 1.0)))
    xb = np.concatenate([x, np.ones((n, 1))], 1)
    penalty = np.full(dim + 1, float(l2))
    penalty[-1] = 0.0  # the bias is not penalised
    w = np.zeros(dim + 1)
    done = 0
    while done < iterations:
        done += 1
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -30, 30)))
        gradient = xb.T @ (weight * (p - y)) + penalty * w
        hessian = (xb * (weight * p * (1 - p))[:, None]).T @ xb + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-7:
            break
    normal = w[:dim]
    norm = float(np.linalg.norm(normal))
    if norm < 1e-12:
        raise ValueError("the boundary is degenerate: the two sides cannot be told apart linearly in z")
    predicted = xb @ w >= 0
    tpr = float(np.mean(predicted[y > 0.5])) if (y > 0.5).any() else 0.0
    tnr = float(np.mean(~predicted[y < 0.5])) if (y < 0.5).any() else 0.0
    return (normal / norm).astype(np.float32), {
        "split": split, "with": int(with_attr.sum()), "without": int(without.sum()),
        "accuracy": round((tpr + tnr) / 2, 4), "offset": round(float(-w[-1] / norm), 4), "iterations": done,
        "l2": float(l2)}


def conditional_direction(primary: np.ndarray, fixed: Sequence[np.ndarray] | np.ndarray) -> tuple[np.ndarray, float]:
    """InterFaceGAN's conditional manipulation: `primary` with the span of the `fixed` normals projected out,
    scaled to unit length, and the cosine between it and `primary` (how much of the edit is left). Moving along it
    leaves every fixed attribute's linear score n_k·z unchanged. Raises ValueError when `primary` lies (nearly) in
    the span of the fixed normals."""
    primary = np.asarray(primary, np.float64)
    fixed_arr = np.asarray(fixed, np.float64).reshape(-1, primary.shape[0])
    if len(fixed_arr):
        basis, singular, _ = np.linalg.svd(fixed_arr.T, full_matrices=False)  # orthonormal basis of the span
        basis = basis[:, singular > 1e-8 * max(float(singular.max()), 1e-300)]
        residual = primary - basis @ (basis.T @ primary)
    else:
        residual = primary
    norm = float(np.linalg.norm(residual))
    if norm < 1e-6 * max(float(np.linalg.norm(primary)), 1e-12):
        raise ValueError("the direction lies in the span of the fixed attributes' normals: nothing is left to move")
    vector = residual / norm
    cosine = float(vector @ primary / max(float(np.linalg.norm(primary)), 1e-12))
    return vector.astype(np.float32), cosine


def sefa_directions(kernel: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """SeFa (closed-form factorization): the top-`k` unit eigenvectors of AᵀA and their eigenvalues, where A maps z
    to G's first feature map. `kernel` is that layer's Keras kernel, [z_dim, out] (y = z @ kernel, so A = kernelᵀ and
    AᵀA = kernel·kernelᵀ). Each vector's sign is fixed so that its largest-magnitude component is positive."""
    kernel = np.asarray(kernel, np.float64)
    values, vectors = np.linalg.eigh(kernel @ kernel.T)
    order = np.argsort(values)[::-1][:k]
    vectors = vectors[:, order].T
    signs = np.sign(vectors[np.arange(len(vectors)), np.argmax(np.abs(vectors), 1)])
    return (vectors * signs[:, None]).astype(np.float32), values[order]


def projection_kernel(module: Any, z_dim: int) -> np.ndarray:
    """The kernel of G's first projection in a loaded generator SavedModel, as [z_dim, out]: the Dense kernel
    [z_dim, out] (dcgan.model's `project`), or a first ConvTranspose kernel [k, k, out, z_dim] flattened to
    [z_dim, k·k·out]. Found among the module's variables by shape (a name with "project" wins a tie)."""
    candidates = []
    # A loaded SavedModel keeps the tracked list (dcgan.export.GeneratorModule.generator_variables), not tf.Module's
    # `variables` property.
    variables = getattr(module, "generator_variables", None) or getattr(module, "variables", ())
    for v in variables:
        shape = tuple(v.shape)
        if len(shape) == 2 and shape[0] == z_dim:
            candidates.append((v, np.asarray(v.numpy())))
        elif len(shape) == 4 and shape[-1] == z_dim:
            candidates.append((v, np.transpose(np.asarray(v.numpy()), (3, 0, 1, 2)).reshape(z_dim, -1)))
    if not candidates:
        raise ValueError(f"no first-layer kernel taking z of length {z_dim} among the SavedModel's variables")
    named = [c for c in candidates if "project" in c[0].name]
    return (named or candidates)[0][1]


# -- quality: graded by the independent judge (dcgan.edit_quality) -------------------------------------------------
def judged_attributes(doc: Mapping[str, Any], min_balanced_accuracy: float | None = None) -> list[str]:
    """The attributes a quality table grades: those whose fitting classifier and (when there is one) judge both
    reach the held-out balanced accuracy (default: the document's `reliable_accuracy`, else 0.8)."""
    if min_balanced_accuracy is None:
        min_balanced_accuracy = float(doc.get("config", {}).get("reliable_accuracy", 0.8))
    out = []
    for name, entry in doc["attributes"].items():
        scores = [(entry.get(role) or {}).get("balanced_accuracy") for role in ("classifier", "judge")
                  if role == "classifier" or "judge" in entry]
        if all(b is not None and b >= min_balanced_accuracy for b in scores):
            out.append(name)
    return out


def _quality_goals(config: Mapping[str, Any]) -> dict[str, float]:
    defaults = DirectionsConfig()
    return {"success": float(config.get("success_goal", defaults.success_goal)),
            "churn_ratio": float(config.get("churn_ratio_goal", defaults.churn_ratio_goal))}


def grade_directions(doc: Mapping[str, Any], generate: Callable[[np.ndarray], np.ndarray],
                     scorers: Mapping[str, Callable[[np.ndarray], np.ndarray]], names: Sequence[str],
                     z: np.ndarray, threshold: float, amount: float, control_directions: int,
                     control_seed: int, measured_control: Mapping[float, Mapping[str, Any]] | None = None,
                     ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The quality table of a document's directions on the faces of `z`: each direction and `control_directions`
    random unit directions (numpy default_rng(control_seed)) moved by `amount`, every picture scored by each of
    `scorers` ({"judge": ..., "classifier": ...}; without a judge the classifier grades itself); then each
    direction with a `suggested_amount` again at that step, beside the same control moved as far.
    `measured_control` ({step: measure_verdicts(...) of that control on the same z with the same scorers}) spares
    measuring it again. Returns the table (dcgan.edit_quality.quality_table) and the verdicts at `amount`."""
    from dcgan import edit_quality

    entries = directions_of(doc)
    vectors = {name: np.asarray(e["vector"], np.float32) for name, e in entries.items()}
    control = edit_quality.random_unit_directions(control_directions, z.shape[1], control_seed)

    def verdicts_at(step: float, subset: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
        if measured_control is None or step not in measured_control:
            return edit_quality.measure_verdicts(generate, scorers, threshold, z, subset, step, control)
        out = edit_quality.measure_verdicts(generate, scorers, threshold, z, subset, step, control[:0])
        for role in out:
            out[role]["control"] = measured_control[step][role]["control"]
        return out

    verdicts = verdicts_at(amount, vectors)
    by_step: dict[float, dict[str, np.ndarray]] = {}
    for name, entry in entries.items():
        if entry.get("suggested_amount") is not None:
            by_step.setdefault(float(entry["suggested_amount"]), {})[name] = vectors[name]
    at_suggested = {step: verdicts if step == amount else verdicts_at(step, subset)
                    for step, subset in sorted(by_step.items())}
    graded_by = "judge" if "judge" in scorers else "classifier"
    table = edit_quality.quality_table(entries, names, judged_attributes(doc), verdicts, amount, graded_by=graded_by,
                                       fitted_with="classifier", goals=_quality_goals(doc.get("config", {})),
                                       control_seed=control_seed, at_suggested=at_suggested)
    table["default_kind"] = DEFAULT_KIND
    return table, verdicts


def measure_quality(saved_model_dir: str, samples: int = 1000, seed: int = 1000, amount: float | None = None,
                    directions_path: str | None = None, classifier_dir: str | None = None,
                    judge_dir: str | None = None, control_directions: int | None = None) -> dict[str, Any]:
    """The quality table of a model's stored directions measured afresh: `samples` new z (numpy default_rng(seed),
    a seed the directions step did not use), each direction and the random control applied at +amount, the faces
    scored by the exported judge and classifier (no training code). A model exported before the judge existed is
    graded by its classifier (`graded_by` says so). Returns the table plus `samples`, `seed`, and the grading
    network's verdicts on the unmoved faces (`base_verdicts` bool [N, A] in the order of `names`) and
    `base_prevalence` (for satisfaction rates)."""
    from dcgan import images as imlib
    from dcgan.export import LoadedGenerator

    directions_path = directions_path or fileio.join(saved_model_dir, DIRECTIONS_FILE)
    doc = read_directions(directions_path)
    classifier = AttributeClassifier(classifier_dir or classifier_path_for(directions_path))
    judge_dir = judge_dir or judge_path_for(directions_path)
    judge = AttributeClassifier(judge_dir) if fileio.exists(fileio.join(judge_dir, "saved_model.pb")) else None
    if judge is not None and judge.names != classifier.names:
        raise DirectionsFileError(f"{judge_dir} scores {judge.names}, the classifier {classifier.names}")
    generator = LoadedGenerator(saved_model_dir)
    if generator.z_dim != doc["z_dim"]:
        raise DirectionsFileError(f"{directions_path} is for z of length {doc['z_dim']}, the model takes "
                                  f"{generator.z_dim}")
    config = doc.get("config", {})
    amount = float(config.get("quality_amount", 2.0)) if amount is None else float(amount)
    if control_directions is None:
        control_directions = int(config.get("control_directions", DirectionsConfig.control_directions))
    z = np.random.default_rng(seed).standard_normal((samples, generator.z_dim)).astype(np.float32)

    def generate(batch: np.ndarray) -> np.ndarray:
        return _to_unit_range(imlib.to_uint8(generator.images(batch)))

    scorers = {"classifier": classifier.scores, **({"judge": judge.scores} if judge is not None else {})}
    table, verdicts = grade_directions(doc, generate, scorers, classifier.names, z, classifier.threshold, amount,
                                       control_directions, seed + 1)
    base = verdicts[table["graded_by"]]["base"]
    table.update(samples=samples, seed=seed, base_verdicts=base, names=list(classifier.names),
                 base_prevalence={n: round(float(base[:, j].mean()), 4) for j, n in enumerate(classifier.names)})
    return table


# -- the whole computation --------------------------------------------------------------------------------------------
def compute_directions(saved_model_dir: str, train_files: Sequence[str], eval_files: Sequence[str] = (),
                       config: DirectionsConfig | None = None, export_classifier_to: str | None = None,
                       export_judge_to: str | None = None) -> dict[str, Any]:
    """Train the classifier (and, with `config.judge`, the independent judge on the other half of the training
    examples) on the real labelled data, fit the directions of every kind on generated samples labelled by the
    classifier, measure their effect on fresh samples, and grade them with the judge (quality table). Returns the
    directions.json document (not written; see `write_directions`). With `export_classifier_to` / `export_judge_to`
    (normally `<saved_model_dir>/assets.extra/attribute_classifier` and `.../attribute_judge`,
    `default_classifier_dir` / `default_judge_dir`), the networks are exported there as SavedModels."""
    from dcgan import edit_quality
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
    # The two networks take disjoint halves of the training examples (judge_half), so the judge has seen none of
    # the examples behind the directions it grades; both are measured on the same held-out examples.
    for_judge = train & judge_half(data.keys) if config.judge else np.zeros_like(train)
    for_classifier = train & ~for_judge
    networks = {"classifier": (for_classifier, build_classifier, config.seed + 2)}
    if config.judge:
        networks["judge"] = (for_judge, build_judge, config.seed + 3)
    models, training, metrics = {}, {}, {}
    for role, (rows, build, seed) in networks.items():
        log.info("directions: training the attribute %s on %d real examples (%s)", role, int(rows.sum()),
                 ", ".join(names))
        models[role], training[role] = train_classifier(
            data.images[rows], y[rows], epochs=config.epochs, batch_size=config.batch_size,
            learning_rate=config.learning_rate, min_steps=config.min_steps, seed=seed, build=build)
        heldout_scores = classify(models[role], _to_unit_range(data.images[data.heldout]))
        metrics[role] = {name: heldout_metrics(y[data.heldout, j], heldout_scores[:, j], config.threshold)
                         for j, name in enumerate(names)}
    model, classifier_metrics = models["classifier"], metrics["classifier"]

    def generate(z: np.ndarray) -> np.ndarray:  # what a viewer sees: the generator's output quantised to uint8
        return _to_unit_range(imlib.to_uint8(generator.images(z)))

    def score(images: np.ndarray) -> np.ndarray:
        return classify(model, images)

    phases = {role: training[role]["seconds"] for role in training}  # where the seconds go (doc["phases"])
    mark = time.monotonic()
    z_dim = generator.z_dim
    z_fit = np.random.default_rng(config.seed).standard_normal((config.samples, z_dim)).astype(np.float32)
    log.info("directions: labelling %d generated samples", config.samples)
    fit_scores = score(generate(z_fit))
    reliable = [n for n in names if (classifier_metrics[n].get("balanced_accuracy") or 0) >= config.reliable_accuracy]

    entries: dict[str, dict[str, Any]] = {}
    normals: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        vector, info = fit_direction(z_fit, fit_scores[:, j], config.threshold, config.min_group)
        entries[name] = {"kind": "mean_difference", "attribute": name, "vector": vector, "fit": info}
        normal, info = fit_boundary(z_fit, fit_scores[:, j], config.threshold, config.min_group, config.boundary_l2)
        normals[name] = normal
        entries[name + KIND_SUFFIX["boundary"]] = {"kind": "boundary", "attribute": name, "vector": normal,
                                                   "fit": info}
    for name in names:
        fixed = [n for n in reliable if n != name]
        try:
            vector, cosine = conditional_direction(normals[name], [normals[n] for n in fixed])
        except ValueError as e:
            log.info("directions: no conditional direction for %s: %s", name, e)
            continue
        entries[name + KIND_SUFFIX["conditional"]] = {"kind": "conditional", "attribute": name, "vector": vector,
                                                      "fixed": fixed, "cosine_to_boundary": round(cosine, 4)}
    try:
        kernel = projection_kernel(generator.module, z_dim)
        sefa, eigenvalues = sefa_directions(kernel, config.sefa_components)
        total = float(np.sum(np.square(kernel))) or 1.0  # the trace of AᵀA = the sum of all its eigenvalues
    except ValueError as e:
        log.info("directions: no SeFa directions: %s", e)
        sefa, eigenvalues, total = np.zeros((0, z_dim), np.float32), np.zeros(0), 1.0
    for k, (vector, value) in enumerate(zip(sefa, eigenvalues)):
        entries[f"SeFa {k + 1}"] = {"kind": "sefa", "attribute": None, "vector": vector,
                                    "eigenvalue": round(float(value), 6), "rank": k + 1}

    phases["fit"], mark = round(time.monotonic() - mark, 1), time.monotonic()
    z_eval = np.random.default_rng(config.seed + 1).standard_normal((config.eval_samples, z_dim)).astype(np.float32)
    log.info("directions: measuring the effect of %d directions on %d fresh samples", len(entries),
             config.eval_samples)
    column = {name: j for j, name in enumerate(names)}
    amounts = sorted(set(config.amounts) | {0.0, float(config.quality_amount)})  # the effect at the quality step too
    reliable_columns = [column[n] for n in reliable]
    effects = measure_effect(generate, score, z_eval, np.stack([e["vector"] for e in entries.values()]),
                             amounts, names, config.threshold,
                             [None if e["attribute"] is None else column[e["attribute"]] for e in entries.values()],
                             judged=reliable_columns)
    # The random control on the same faces at every positive amount: what a step that size does, against which
    # each slider's suggested step keeps its churn (suggested_amount) — by the classifier's verdicts alone; scored
    # by the judge too, the same pictures serve again as the quality table's control (grade_directions).
    scorers = {role: (lambda images, m=m: classify(m, images)) for role, m in models.items()}
    control = edit_quality.random_unit_directions(config.control_directions, z_dim, config.seed + 4)
    measured_control = {a: edit_quality.measure_verdicts(generate, scorers, config.threshold, z_eval, {}, a, control)
                        for a in amounts if a > 0}
    control_churn = {a: edit_quality.control_quality(v["classifier"]["base"], v["classifier"]["control"],
                                                     reliable_columns, names)["churn"]
                     for a, v in measured_control.items()}
    for entry, effect in zip(entries.values(), effects):
        entry["effect"] = effect
        entry["vector"] = [round(float(v), 7) for v in entry["vector"]]
        if entry["attribute"] is not None:
            entry["suggested_amount"] = suggested_amount(
                effect, config.suggest_success, {a: c.get(entry["attribute"]) for a, c in control_churn.items()},
                config.churn_ratio_goal)

    phases["effect"], mark = round(time.monotonic() - mark, 1), time.monotonic()
    cooccurrence = label_cooccurrence(y[train])
    result_attributes: dict[str, Any] = {}
    for j, attribute in enumerate(attributes):
        real = y[train, j]
        known_real = real[real >= 0]
        result_attributes[attribute.name] = {
            "definition": attribute.definition,
            "classifier": classifier_metrics[attribute.name],
            **({"judge": metrics["judge"][attribute.name]} if "judge" in metrics else {}),
            "reliable": attribute.name in reliable,
            "positive_rate": {
                "real": round(float(np.mean(known_real > 0.5)), 4) if len(known_real) else None,
                "generated": round(float(np.mean(fit_scores[:, j] >= config.threshold)), 4),
            },
            "normal": [round(float(v), 7) for v in normals[attribute.name]],
        }
    doc = {
        "format": FORMAT,
        "z_dim": int(z_dim),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {"saved_model_dir": (saved_model_dir if fileio.is_remote(saved_model_dir)
                                      else os.path.abspath(saved_model_dir)),
                  "image_shape": [int(height), int(height), int(channels)],
                  "step": generator.metadata.get("step")},
        "data": {"description": data.description, "train_examples": int(train.sum()),
                 "heldout_examples": int(data.heldout.sum()), "heldout": data.heldout_rule,
                 "classifier_examples": int(for_classifier.sum()), "judge_examples": int(for_judge.sum()),
                 "split": (JUDGE_SPLIT if config.judge else "the classifier trains on every training example")},
        "classifier": {"architecture": CLASSIFIER_ARCHITECTURE, "role": "fits the directions",
                       "input": f"{height}x{height}x{channels} in [-1, 1]", "saved_model": CLASSIFIER_DIR,
                       "seed": config.seed + 2, **training["classifier"]},
        "method": {
            "mean_difference": "normalise(mean z(with) - mean z(without)) over generated samples labelled by the "
                               "classifier",
            "boundary": "unit normal of a class-balanced L2 logistic regression separating the labelled samples' z "
                        "(InterFaceGAN)",
            "conditional": "the boundary normal with the normals of the other reliable attributes projected out "
                           "(InterFaceGAN conditional manipulation); `fixed` names them",
            "sefa": "top eigenvectors of A^T A, A = the generator's first projection (SeFa); unsupervised",
            "effect": "measured on fresh samples (eval_seed) with the classifier",
            "suggested_amount": "per attribute direction, by the classifier on the effect samples: the smallest "
                                "positive amount at which it calls at least config.suggest_success of the faces "
                                "positive with churn at most config.churn_ratio_goal x the random control's "
                                "(`control`), else the smallest that reaches it, else the amount where most are",
            "quality": ("graded on the fresh samples by the judge, which was trained on the other half of the "
                        "examples and did not fit the directions, beside the classifier's own verdicts; churn and "
                        "the random control as in dcgan.edit_quality" if config.judge else
                        "graded on the fresh samples by the classifier that fitted the directions (no judge)"),
        },
        "config": {**asdict(config), "amounts": list(config.amounts)},
        "samples": {"fit": config.samples, "fit_seed": config.seed, "eval": config.eval_samples,
                    "eval_seed": config.seed + 1, "control_seed": config.seed + 4,
                    "z": "numpy default_rng(seed).standard_normal"},
        "amounts": [float(a) for a in amounts],
        "attributes": result_attributes,
        "directions": entries,
        "sefa": {"components": len(sefa), "explained": [round(float(v) / total, 4) for v in eigenvalues]},
        "control": {"directions": config.control_directions, "seed": config.seed + 4, "by": "classifier",
                    "churn": {f"{a:g}": c for a, c in control_churn.items()}},
        "skipped": skipped,
    }
    if "judge" in models:
        doc["judge"] = {"architecture": JUDGE_ARCHITECTURE, "role": "grades the directions (quality)",
                        "input": f"{height}x{height}x{channels} in [-1, 1]", "saved_model": JUDGE_DIR,
                        "seed": config.seed + 3, **training["judge"]}
    log.info("directions: grading %d directions and %d random ones on the %d fresh samples", len(entries),
             config.control_directions, config.eval_samples)
    doc["quality"], _ = grade_directions(doc, generate, scorers, names, z_eval, config.threshold,
                                         float(config.quality_amount), config.control_directions, config.seed + 4,
                                         measured_control)
    phases["quality"] = round(time.monotonic() - mark, 1)
    exports = {"classifier": (export_classifier_to, CLASSIFIER_DIR), "judge": (export_judge_to, JUDGE_DIR)}
    for role, model_of_role in models.items():
        out_dir, default = exports[role]
        if not out_dir:
            continue
        export_attribute_classifier(model_of_role, names, out_dir, {
            "role": role, "threshold": config.threshold, "classifier": metrics[role],
            "reliable": [n for n in names if (metrics[role][n].get("balanced_accuracy") or 0)
                         >= config.reliable_accuracy],
            "cooccurrence": cooccurrence, "image_shape": [int(height), int(height), int(channels)]})
        doc[role]["saved_model"] = default if out_dir == fileio.join(saved_model_dir, default) else out_dir
    doc["seconds"] = round(time.monotonic() - started, 1)
    doc["phases"] = phases
    return doc


def label_cooccurrence(y: np.ndarray) -> dict[str, Any]:
    """counts[a][b] = [[n(a=0,b=0), n(a=0,b=1)], [n(a=1,b=0), n(a=1,b=1)]] over the examples where both are known
    (labels −1 = unknown are left out), and n[a] = [n(a=0), n(a=1)]. Used to tell contradictory specifications."""
    known = y >= 0
    ones = (y > 0.5) & known
    zeros = (y < 0.5) & known
    sides = (zeros.astype(np.int64), ones.astype(np.int64))
    counts = np.zeros((y.shape[1], y.shape[1], 2, 2), np.int64)
    for va in (0, 1):
        for vb in (0, 1):
            counts[:, :, va, vb] = sides[va].T @ sides[vb]
    return {"n": [[int(zeros[:, j].sum()), int(ones[:, j].sum())] for j in range(y.shape[1])],
            "counts": counts.tolist()}


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


def classifier_path_for(directions_path: str, folder: str = CLASSIFIER_DIR) -> str:
    """Where the attribute classifier of a directions.json lives: beside it (assets.extra/attribute_classifier);
    `folder=JUDGE_DIR` for the judge (`judge_path_for`)."""
    return fileio.join(directions_path.rsplit("/", 1)[0] if fileio.is_remote(directions_path)
                       else os.path.dirname(directions_path), os.path.basename(folder))


def judge_path_for(directions_path: str) -> str:
    """Where the independent judge of a directions.json lives: beside it (assets.extra/attribute_judge)."""
    return classifier_path_for(directions_path, JUDGE_DIR)


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
    result = compute_directions(saved_model_dir, train_files, eval_files, config,
                                export_classifier_to=default_classifier_dir(saved_model_dir),
                                export_judge_to=default_judge_dir(saved_model_dir))
    return write_directions(saved_model_dir, result), result


def default_classifier_dir(saved_model_dir: str) -> str:
    return fileio.join(saved_model_dir, CLASSIFIER_DIR)


def default_judge_dir(saved_model_dir: str) -> str:
    return fileio.join(saved_model_dir, JUDGE_DIR)


# -- reading ----------------------------------------------------------------------------------------------------------
def directions_of(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The named directions of a document: its `directions` (/2), or — for a /1 file — its attributes' vectors as
    mean-difference directions."""
    if isinstance(doc.get("directions"), dict):
        return doc["directions"]
    return {name: {"kind": "mean_difference", "attribute": name, **entry}
            for name, entry in doc.get("attributes", {}).items()}


def _check_vector(path: str, what: str, vector: Any, dim: int) -> None:
    if not isinstance(vector, list) or len(vector) != dim:
        raise DirectionsFileError(f"{path}: the vector of {what} must be a list of {dim} numbers")
    try:
        array = np.asarray(vector, np.float64)
    except (TypeError, ValueError) as e:
        raise DirectionsFileError(f"{path}: the vector of {what} must be a list of {dim} numbers") from e
    if not np.all(np.isfinite(array)):
        raise DirectionsFileError(f"{path}: the vector of {what} is not finite")


def read_directions(path: str, z_dim: int | None = None) -> dict[str, Any]:
    """Load and check a directions.json (format /2, or /1): every vector of length z_dim and finite, every kind
    known. A /1 document is returned in the /2 shape (`directions` = its attributes as mean-difference directions;
    `format` still says /1). Raises DirectionsFileError with the reason otherwise."""
    try:
        with fileio.open_file(path) as f:
            doc = json.load(f)
    except OSError as e:
        raise DirectionsFileError(f"cannot read {path}: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise DirectionsFileError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") not in (FORMAT, FORMAT_V1):
        found = doc.get("format") if isinstance(doc, dict) else None
        raise DirectionsFileError(f"{path} is not a {FORMAT} (or {FORMAT_V1}) file (format: {found!r})")
    dim = doc.get("z_dim")
    if not isinstance(dim, int) or dim <= 0:
        raise DirectionsFileError(f"{path}: z_dim must be a positive integer")
    if z_dim is not None and dim != z_dim:
        raise DirectionsFileError(f"{path} holds directions for z of length {dim}, but the model takes {z_dim}")
    attributes = doc.get("attributes")
    if not isinstance(attributes, dict):
        raise DirectionsFileError(f"{path}: 'attributes' must be an object")
    if doc["format"] == FORMAT_V1:
        for name, entry in attributes.items():
            _check_vector(path, repr(name), entry.get("vector") if isinstance(entry, dict) else None, dim)
        doc["directions"] = directions_of(doc)
        return doc
    directions = doc.get("directions")
    if not isinstance(directions, dict):
        raise DirectionsFileError(f"{path}: 'directions' must be an object")
    for name, entry in attributes.items():
        if not isinstance(entry, dict):
            raise DirectionsFileError(f"{path}: attribute {name!r} must be an object")
        if "normal" in entry:
            _check_vector(path, f"the boundary normal of {name!r}", entry["normal"], dim)
    for name, entry in directions.items():
        if not isinstance(entry, dict):
            raise DirectionsFileError(f"{path}: direction {name!r} must be an object")
        if entry.get("kind") not in KINDS:
            raise DirectionsFileError(f"{path}: direction {name!r} has kind {entry.get('kind')!r}; known: "
                                      f"{', '.join(KINDS)}")
        if entry["kind"] != "sefa" and entry.get("attribute") not in attributes:
            raise DirectionsFileError(f"{path}: direction {name!r} names attribute {entry.get('attribute')!r}, "
                                      "which is not in 'attributes'")
        _check_vector(path, repr(name), entry.get("vector"), dim)
    return doc


def format_report(result: Mapping[str, Any]) -> str:
    """A text table: per direction (grouped by kind), held-out classifier accuracy, positive rates, and the score
    change at each amount (the effect); then the quality table (dcgan.edit_quality.format_quality)."""
    amounts = [a for a in result["amounts"] if a != 0]
    head = (f"{'direction':<26} {'acc':>5} {'bal':>5} {'judge':>5} {'real+':>6} {'gen+':>6} "
            + " ".join(f"{a:>+6g}" for a in amounts)
            + f"   most entangled (at {_side_effect_amount(result['amounts']):+g})")
    lines = [head, "-" * len(head)]

    def pct(v):
        return "   -" if v is None else f"{v:.2f}"
    for name, entry in sorted(directions_of(result).items(), key=lambda kv: KINDS.index(kv[1]["kind"])):
        attribute = result["attributes"].get(entry.get("attribute") or "", {})
        c, rate, effect = attribute.get("classifier", {}), attribute.get("positive_rate", {}), entry["effect"]
        deltas = dict(zip(effect["amounts"], effect.get("delta", [None] * len(effect["amounts"]))))
        side = ", ".join(f"{k} {v:+.2f}" for k, v in effect["side_effects"].items())
        judge = (attribute.get("judge") or {}).get("balanced_accuracy")
        lines.append(f"{name:<26} {pct(c.get('accuracy')):>5} {pct(c.get('balanced_accuracy')):>5} {pct(judge):>5} "
                     f"{pct(rate.get('real')):>6} {pct(rate.get('generated')):>6} "
                     + " ".join("     -" if deltas[a] is None else f"{deltas[a]:>+6.2f}" for a in amounts)
                     + f"   {side}")
    for name, reason in result.get("skipped", {}).items():
        lines.append(f"{name:<26} skipped: {reason}")
    lines.append("acc/bal: accuracy / balanced accuracy of the classifier on held-out real examples; judge: the "
                 "judge's balanced accuracy on the same examples; real+/gen+: share with the "
                 "attribute (real data / generated); columns ±a: change of the mean classifier score after moving "
                 "fresh samples by a along the unit direction (SeFa: no attribute, see its side effects).")
    if "control" in result.get("quality", {}):  # documents written before the judge have another table
        from dcgan.edit_quality import format_quality

        lines += ["", format_quality(result["quality"])]
    return "\n".join(lines)
