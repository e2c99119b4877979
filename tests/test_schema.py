"""dcgan.schema: version-2 examples carry typed features; version-1 records (without them) stay readable by the
Python parser and by training."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import tensorflow as tf

from dcgan import images as imlib
from dcgan import schema


def _v1_example(png: bytes, i: int) -> tf.train.Example:
    """An example exactly as version 1 wrote it: the fixed fields and an attribute, no schema_version."""
    def b(v: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def n(v: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))

    feature = {schema.IMAGE_KEY: b(png), schema.HEIGHT_KEY: n(16), schema.WIDTH_KEY: n(16),
               schema.ID_KEY: b(f"v1-{i}".encode()), schema.SOURCE_KEY: b(b"old"),
               schema.SHA256_KEY: b(hashlib.sha256(png).hexdigest().encode()), "attr/smiling": b(b"1")}
    return tf.train.Example(features=tf.train.Features(feature=feature))


def _png(seed: int) -> bytes:
    return imlib.encode_png(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8))


def test_v2_example_round_trips_its_typed_features():
    features = {schema.BRIGHTNESS_KEY: 0.5, schema.COLOUR_KEY: "colour", schema.SOURCE_HEIGHT_KEY: 480,
                schema.FACE_ROLL_KEY: np.float64(-3.25)}
    example = schema.make_example(_png(0), 16, 16, "a", "src", {"smiling": 1}, features=features)
    f = example.features.feature
    assert f[schema.BRIGHTNESS_KEY].float_list.value == [0.5]
    assert f[schema.SOURCE_HEIGHT_KEY].int64_list.value == [480]
    assert f[schema.COLOUR_KEY].bytes_list.value == [b"colour"]
    assert f[schema.SCHEMA_VERSION_KEY].int64_list.value == [schema.SCHEMA_VERSION] == [2]
    parsed = schema.parse_example_proto(example.SerializeToString())
    assert parsed[schema.SCHEMA_VERSION_KEY] == 2 and parsed["attributes"] == {"smiling": "1"}
    assert parsed["features"] == {schema.BRIGHTNESS_KEY: 0.5, schema.COLOUR_KEY: "colour",
                                  schema.SOURCE_HEIGHT_KEY: 480, schema.FACE_ROLL_KEY: -3.25}


def test_make_example_refuses_untyped_or_clashing_features():
    with pytest.raises(TypeError, match="not a float, int or str"):
        schema.make_example(_png(0), 16, 16, "a", "src", features={"quality/x": [1.0]})
    with pytest.raises(ValueError, match="overwrite"):
        schema.make_example(_png(0), 16, 16, "a", "src", features={schema.ID_KEY: "b"})


def test_inputs_row_has_no_image_and_parses():
    row = schema.make_inputs_example("x.jpg", "no_face", {schema.SOURCE_HEIGHT_KEY: 10, schema.SOURCE_WIDTH_KEY: 20})
    parsed = schema.parse_example_proto(row.SerializeToString())
    assert schema.IMAGE_KEY not in parsed and parsed[schema.ID_KEY] == "x.jpg"
    assert parsed["features"] == {schema.OUTCOME_KEY: "no_face", schema.SOURCE_HEIGHT_KEY: 10,
                                  schema.SOURCE_WIDTH_KEY: 20}


def test_v1_records_still_parse_and_train(tmp_path):
    from dcgan.data import make_training_data

    split = tmp_path / "examples" / "Split-train"
    split.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split / f"data{schema.FILE_SUFFIX}"), options=schema.COMPRESSION) as w:
        for i in range(8):
            w.write(_v1_example(_png(i), i).SerializeToString())
    (first, *_) = schema.read_examples([str(split / f"data{schema.FILE_SUFFIX}")])
    assert first[schema.SCHEMA_VERSION_KEY] == 1 and first["features"] == {}
    assert first[schema.ID_KEY] == "v1-0" and first["attributes"] == {"smiling": "1"}
    assert imlib.decode_png(first[schema.IMAGE_KEY]).shape == (16, 16, 3)
    data = make_training_data(str(tmp_path / "examples"), size=16, channels=3, batch_size=4, seed=0,
                              progress=False)
    assert data.num_examples == 8
    assert data.lookup(next(iter(data.dataset))).shape == (4, 16, 16, 3)
