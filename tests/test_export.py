"""The exported SavedModel: signatures round-trip, validate their inputs, carry metadata and warm-up requests."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from dcgan.export import MAX_BATCH, LoadedGenerator, export_run
from dcgan.images import decode_png, to_uint8
from dcgan.latent import z_from_seeds


@pytest.fixture(scope="module")
def generator(tiny_saved_model) -> LoadedGenerator:
    return LoadedGenerator(tiny_saved_model)


def test_signatures_and_their_input_specs(generator):
    sigs = generator.module.signatures
    assert set(sigs) == {"serving_default", "generate", "interpolate", "project"}
    spec = {name: {k: (v.dtype, v.shape.as_list()) for k, v in sigs[name].structured_input_signature[1].items()}
            for name in sigs}
    assert spec["serving_default"] == {"z": (tf.float32, [None, 100])}
    assert spec["generate"] == {"seed": (tf.int64, [None])}
    assert spec["interpolate"] == {"z0": (tf.float32, [None, 100]), "z1": (tf.float32, [None, 100]),
                                   "t": (tf.float32, [None])}
    assert spec["project"] == {"image": (tf.float32, [None, 32, 32, 3])}
    outputs = {name: set(sigs[name].structured_outputs) for name in sigs}
    assert outputs == {"serving_default": {"images"}, "generate": {"png_bytes", "z"}, "interpolate": {"images", "z"},
                       "project": {"z", "images", "distance", "loss"}}


def test_serving_default_matches_the_ema_generator_of_the_run(generator, tiny_run):
    from dcgan.run import load_models

    models = load_models(tiny_run)
    z = np.random.default_rng(1).standard_normal((3, 100)).astype(np.float32)
    expected = models.ema_generator(z, training=False).numpy()
    got = generator.images(z)
    assert got.shape == (3, 32, 32, 3) and got.min() >= -1 and got.max() <= 1
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not np.allclose(got, models.generator(z, training=False).numpy(), atol=1e-6), "export is not the EMA G"


def test_generate_returns_pngs_of_the_faces_of_its_z(generator):
    out = generator.generate([5, 6, 7])
    np.testing.assert_array_equal(out["z"], z_from_seeds([5, 6, 7], 100))
    pixels = np.stack([decode_png(p) for p in out["png_bytes"]])
    np.testing.assert_array_equal(pixels, to_uint8(generator.images(out["z"])))
    again = generator.generate([6])
    assert again["png_bytes"][0] == out["png_bytes"][1], "the same seed must give the same face"


def test_interpolate_is_rowwise_slerp_with_exact_ends(generator):
    from dcgan.latent import interpolate

    z = z_from_seeds([1, 2], 100)
    t = np.linspace(0, 1, 6, dtype=np.float32)
    out = generator.module.signatures["interpolate"](z0=tf.constant(np.repeat(z[:1], 6, 0)),
                                                     z1=tf.constant(np.repeat(z[1:], 6, 0)), t=tf.constant(t))
    path = out["z"].numpy()
    np.testing.assert_array_equal(path[0], z[0])
    np.testing.assert_array_equal(path[-1], z[1])
    np.testing.assert_allclose(path, interpolate(z[0], z[1], 6), atol=1e-5)
    np.testing.assert_allclose(out["images"].numpy(), generator.images(path), atol=1e-6)


@pytest.mark.parametrize("name,inputs,message", [
    ("serving_default", {"z": np.full((1, 100), np.nan, np.float32)}, "z must be finite"),
    ("serving_default", {"z": np.full((2, 100), np.inf, np.float32)}, "z must be finite"),
    ("serving_default", {"z": np.zeros((MAX_BATCH + 1, 100), np.float32)}, f"at most {MAX_BATCH}"),
    ("generate", {"seed": np.arange(MAX_BATCH + 1, dtype=np.int64)}, f"at most {MAX_BATCH}"),
    ("interpolate", {"z0": np.zeros((1, 100), np.float32), "z1": np.zeros((1, 100), np.float32),
                     "t": np.array([2.0], np.float32)}, r"t must be in \[0, 1\]"),
    ("interpolate", {"z0": np.zeros((2, 100), np.float32), "z1": np.zeros((1, 100), np.float32),
                     "t": np.array([0.5], np.float32)}, "same batch size"),
])
def test_bad_inputs_are_rejected_inside_the_graph(generator, name, inputs, message):
    fn = generator.module.signatures[name]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        fn(**{k: tf.constant(v) for k, v in inputs.items()})


def test_wrong_shapes_and_dtypes_do_not_match_the_signature(generator):
    fn = generator.module.signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="not compatible with expected shape"):
        fn(z=tf.zeros((1, 5)))
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor but is a double"):
        fn(z=tf.zeros((1, 100), tf.float64))


def test_metadata_and_tf_serving_warmup_requests_are_exported(tiny_saved_model):
    from tensorflow_serving.apis import prediction_log_pb2

    meta = json.load(open(os.path.join(tiny_saved_model, "assets.extra", "dcgan.json")))
    assert meta["model"]["size"] == 32 and meta["step"] == 6 and meta["ema"] is True
    assert meta["signatures"] == ["serving_default", "generate", "interpolate", "project"]
    records = list(tf.data.TFRecordDataset(os.path.join(tiny_saved_model, "assets.extra",
                                                        "tf_serving_warmup_requests")).as_numpy_iterator())
    logs = [prediction_log_pb2.PredictionLog.FromString(r) for r in records]
    assert [x.predict_log.request.model_spec.signature_name for x in logs] == ["serving_default", "generate",
                                                                               "interpolate"]


def test_export_is_atomic_and_does_not_overwrite_without_force(tmp_path, tiny_run):
    out = str(tmp_path / "models" / "dcgan" / "1")
    export_run(tiny_run, out)
    assert sorted(os.listdir(tmp_path / "models" / "dcgan")) == ["1"], "a temporary export directory was left"
    with pytest.raises(FileExistsError, match="already exists"):
        export_run(tiny_run, out)
    export_run(tiny_run, out, overwrite=True, use_ema=False)
    assert json.load(open(os.path.join(out, "assets.extra", "dcgan.json")))["ema"] is False


def _session_inputs() -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    z0, z1 = (rng.standard_normal((3, 100)).astype(np.float32) for _ in range(2))
    return {
        "serving_default": {"z": z0},
        "generate": {"seed": np.array([0, 5, 2**40], np.int64)},
        "interpolate": {"z0": z0, "z1": z1, "t": np.array([0.0, 0.3, 1.0], np.float32)},
        "project": {"image": rng.uniform(-1.0, 1.0, (2, 32, 32, 3)).astype(np.float32)},
    }


def test_every_signature_runs_in_a_tf1_session_like_tf_serving(tiny_saved_model, generator):
    """TF Serving loads a SavedModel into a TF1 session (MetaGraph + SignatureDefs, restore op) and runs signatures by
    their tensor names: every variable the signatures read must be restored, and outputs equal TF2's loader's."""
    inputs = _session_inputs()
    expected_outputs = {name: {k: v.numpy() for k, v in generator.module.signatures[name](
        **{k: tf.constant(v) for k, v in feed.items()}).items()} for name, feed in inputs.items()}
    graph = tf.Graph()
    sess = tf.compat.v1.Session(graph=graph)
    with sess:
        meta_graph = tf.compat.v1.saved_model.loader.load(sess, ["serve"], tiny_saved_model)
        assert set(meta_graph.signature_def) >= set(inputs)
        handles = [op for op in graph.get_operations() if op.type == "VarHandleOp"]
        assert handles
        with graph.as_default():
            initialized = sess.run([tf.raw_ops.VarIsInitializedOp(resource=op.outputs[0]) for op in handles])
        assert [op.name for op, ok in zip(handles, initialized) if not ok] == []
        for name, sig in meta_graph.signature_def.items():
            if name == "__saved_model_init_op":
                continue
            assert name in inputs, f"signature {name} has no test inputs"
            feed = {sig.inputs[k].name: v for k, v in inputs[name].items()}
            fetches = {k: info.name for k, info in sig.outputs.items()}
            got = sess.run(fetches, feed_dict=feed)
            expected = expected_outputs[name]
            assert set(got) == set(expected)
            for key in expected:
                if expected[key].dtype == object:  # PNG bytes: same pixels
                    assert [decode_png(b).tolist() for b in got[key]] == [decode_png(b).tolist()
                                                                          for b in expected[key]]
                else:
                    np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-5,
                                               err_msg=f"{name}/{key}")
        sig = meta_graph.signature_def["serving_default"]
        bad = np.zeros((1, 100), np.float32)
        bad[0, 3] = np.nan
        with pytest.raises(tf.errors.InvalidArgumentError, match="z must be finite"):
            sess.run(sig.outputs["images"].name, feed_dict={sig.inputs["z"].name: bad})
