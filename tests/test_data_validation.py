"""Data validation stops a bad drop before training: real drops, the real pipeline (`dcgan pipeline run --preset
smoke`: the CLI's `main`, whose return value is the command's exit code), TFX's StatisticsGen / SchemaGen /
ExampleValidator with TFDV.

One pipeline root holds a user's own folder of photos (avatars rendered to PNG files, with a CelebA attribute file):

1. the clean drop: its schema is inferred and written to `<root>/schema.pbtxt`, validation passes, a model is pushed;
2. drops that are wrong for the model, each into the same root: mostly greyscale, much darker, an attribute column
   gone. Each run stops before the Trainer spends any time (exit 4), names the anomaly (feature and what was found),
   and pushes nothing;
3. the user allows the greyscale drop by editing `<root>/schema.pbtxt` as docs/data.md says: it passes and trains.

A fresh root in align mode gets a drop where most photos have no face: stopped on its first run (the schema's policy
needs at least half the inputs to become examples). The clean built-in avatars drop (the curated
pipeline/schemas/avatars.pbtxt) passing is checked by every smoke pipeline test (tests/test_pipeline.py).
"""

from __future__ import annotations

import contextlib
import glob
import io
import logging
import os
import re

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

N = 120
FLAGS = ("Eyeglasses", "Hat", "Facial_hair")
STOPPED = 4  # `dcgan pipeline run`'s exit code when data validation stops the run


def _flags(attributes: dict[str, str]) -> dict[str, int]:
    none = "none"
    return {"Eyeglasses": attributes.get("accessory", none) != none, "Hat": attributes.get("hat", none) != none,
            "Facial_hair": attributes.get("facial_hair", none) != none}


def write_drop(folder: str, *, seed: int, change=None, flags=FLAGS) -> str:
    """N avatars of `seed` as PNG files (64 px) with a CelebA-format `list_attr_celeba.txt` of `flags` beside them;
    `change(image) -> image` alters every image (or the images it returns non-None for)."""
    from dcgan import avatars

    os.makedirs(folder, exist_ok=True)
    rows = []
    for i in range(N):
        image, attributes = avatars.generate_avatar(seed, i, 64)
        if change is not None:
            image = change(i, image)
        name = f"face_{seed}_{i:04d}.png"
        Image.fromarray(image).save(os.path.join(folder, name))
        values = _flags(attributes)
        rows.append(name + " " + " ".join("1" if values[f] else "-1" for f in flags))
    with open(os.path.join(folder, "list_attr_celeba.txt"), "w") as f:
        f.write(f"{N}\n{' '.join(flags)}\n" + "\n".join(rows) + "\n")
    return folder


def greyscale(i: int, image: np.ndarray) -> np.ndarray:
    if i % 5 == 0:  # a fifth stay in colour: "mostly" greyscale
        return image
    grey = (image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).round().astype(np.uint8)
    return np.dstack([grey] * 3)


def darker(i: int, image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float32) * 0.2).round().astype(np.uint8)


def run_pipeline(root: str, data: str, *settings: str) -> tuple[int, str]:
    """(exit code, output) of `dcgan pipeline run --preset smoke` on `root`: what it prints and the project's log lines
    (ingest, training steps), together. In this process, as tests/test_pipeline.py runs it: a subprocess per run
    would spend ~13 s of each of this module's six runs importing TensorFlow and TFX again."""
    from dcgan.cli import main

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    loggers = [logging.getLogger(name) for name in ("dcgan", "components", "pipeline")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(["pipeline", "run", "--preset", "smoke", "--root", root, "--data", data,
                         "--set", "ingest.mode=none", "--set", "directions.enabled=false", *settings])
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
    return code, out.getvalue()


def pushed_versions(root: str) -> list[str]:
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(root, "serving", "dcgan", "[0-9]*")))


def trainer_ran(output: str) -> bool:
    return re.search(r"\bstep \d+/\d+", output) is not None  # dcgan.train's progress line


@pytest.fixture(scope="module")
def user_root(tmp_path_factory):
    """A root whose first, clean drop has passed: (root, the tmp folder for more drops)."""
    base = tmp_path_factory.mktemp("validation")
    root = str(base / "root")
    code, out = run_pipeline(root, write_drop(str(base / "clean"), seed=1))
    assert code == 0, out[-6000:]
    assert os.path.isfile(os.path.join(root, "schema.pbtxt")), "the first run writes the inferred schema to curate"
    assert "data validation" in out and "passed" in out, out[-3000:]
    assert trainer_ran(out), "the training progress lines are in the output (so their absence below means something)"
    assert len(pushed_versions(root)) == 1
    return root, base


@pytest.mark.parametrize("name, change, flags, expected", [
    ("greyscale", greyscale, FLAGS, "quality/colour"),
    ("dark", darker, FLAGS, "quality/exposure"),
    ("no_hat_column", None, ("Eyeglasses", "Facial_hair"), "attr/Hat"),
])
def test_a_bad_drop_is_stopped_before_training_with_the_named_anomaly(user_root, name, change, flags, expected):
    root, base = user_root
    before = pushed_versions(root)
    code, out = run_pipeline(root, write_drop(str(base / name), seed=2, change=change, flags=flags))
    assert code == STOPPED, out[-6000:]
    assert expected in out, f"the anomaly on {expected} is not named:\n{out[-4000:]}"
    assert "schema.pbtxt" in out, "the message says where to allow it"
    assert "statistics.png" in out, "the message names the picture of this drop against the last validated one"
    assert "Traceback" not in out
    assert not trainer_ran(out), "training time was spent on a bad drop"
    assert pushed_versions(root) == before


def test_an_anomaly_the_user_allowed_in_the_schema_passes(user_root):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    root, base = user_root
    path = os.path.join(root, "schema.pbtxt")
    schema = text_format.Parse(open(path).read(), schema_pb2.Schema())
    # What docs/data.md tells a user to do: greyscale photos are fine now, so add the value to the feature's domain,
    # and accept the shift of saturation from the last drop.
    for feature in schema.feature:
        if feature.name == "quality/colour":
            if "greyscale" not in feature.string_domain.value:
                feature.string_domain.value.append("greyscale")
        if feature.HasField("drift_comparator") and feature.name in ("quality/saturation", "quality/colour"):
            feature.ClearField("drift_comparator")
    for domain in schema.string_domain:
        if domain.name == "quality/colour" and "greyscale" not in domain.value:
            domain.value.append("greyscale")
    with open(path, "w") as f:
        f.write(text_format.MessageToString(schema))
    before = pushed_versions(root)
    code, out = run_pipeline(root, str(base / "greyscale"))
    assert code == 0, out[-6000:]
    assert len(pushed_versions(root)) == len(before) + 1


def test_a_drop_where_most_photos_have_no_face_is_stopped_on_its_first_run(tmp_path):
    from skimage import data

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(data.astronaut()).save(folder / "astronaut.jpg", quality=92)
    Image.fromarray(np.ascontiguousarray(data.astronaut()[:, ::-1])).save(folder / "mirrored.png")
    for name in ("coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.jpg", quality=92)
    root = str(tmp_path / "root")
    code, out = run_pipeline(root, str(folder), "--set", "ingest.mode=align", "--set", "ingest.eval_ratio=0.3")
    assert code == STOPPED, out[-6000:]
    assert "ingest/outcome" in out and "no_face" in out, out[-4000:]
    assert not trainer_ran(out)
    assert pushed_versions(root) == []
