"""Attribute labels from the real examples: the binary attributes the `attr/<name>` labels support (every 0/1 or ±1
flag, plus a few derived from the avatars' parts), the labelled data read at the generator's resolution, the hashed
held-out share and the judge's half of the training examples, and the labels' co-occurrence counts."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dcgan.errors import DataError

log = logging.getLogger("dcgan.directions")  # one logger for the package, named as before the split

FLAG_VALUES = {"1": True, "0": False, "-1": False}  # ingest stores CelebA's ±1 flags as "1"/"0"; accept "-1" too
NONE = "none"  # the avatars' "absent" part label
JUDGE_SPLIT = ("the training examples whose sha256('judge:' + example sha256) falls in the lower half train the judge, "
               "the others the classifier")


class NoAttributeLabels(DataError):
    """The data carries no usable attribute labels, so no attribute direction can be computed."""


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
