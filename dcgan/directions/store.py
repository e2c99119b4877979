"""The file format: directions.json (`dcgan-directions/2`; /1 files, mean-difference only, are still read) stored
beside the SavedModel in `assets.extra/`, with the exported classifier and judge in folders beside it; writing it
atomically, and reading it back with every vector checked."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from dcgan import fileio
from dcgan.directions.kinds import KINDS
from dcgan.errors import DcganError
from dcgan.fileio import write_json_atomic

FORMAT = "dcgan-directions/2"
FORMAT_V1 = "dcgan-directions/1"
DIRECTIONS_FILE = os.path.join("assets.extra", "directions.json")
CLASSIFIER_DIR = os.path.join("assets.extra", "attribute_classifier")
JUDGE_DIR = os.path.join("assets.extra", "attribute_judge")  # the independent judge, same format as the classifier


class DirectionsFileError(DcganError, ValueError):
    """A directions.json that cannot be used (missing fields, wrong z_dim, not finite)."""


def classifier_path_for(directions_path: str, folder: str = CLASSIFIER_DIR) -> str:
    """Where the attribute classifier of a directions.json lives: beside it (assets.extra/attribute_classifier);
    `folder=JUDGE_DIR` for the judge (`judge_path_for`)."""
    return fileio.join(directions_path.rsplit("/", 1)[0] if fileio.is_remote(directions_path)
                       else os.path.dirname(directions_path), os.path.basename(folder))


def judge_path_for(directions_path: str) -> str:
    """Where the independent judge of a directions.json lives: beside it (assets.extra/attribute_judge)."""
    return classifier_path_for(directions_path, JUDGE_DIR)


def write_directions(saved_model_dir: str, result: Mapping[str, Any], path: str | None = None) -> str:
    """Write directions.json (atomically) to `path`, by default `<saved_model_dir>/assets.extra/directions.json`."""
    path = path or fileio.join(saved_model_dir, DIRECTIONS_FILE)
    if not fileio.is_remote(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return write_json_atomic(path, result, indent=1)


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
