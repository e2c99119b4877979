"""`dcgan serve` as a drop-in for tensorflow_model_server, on the kinds of SavedModel TF Serving's own test suite
(tensorflow_model_server_test.py) serves, each built here: a TF1 graph export (tf.compat.v1 builder), a Keras
Sequential saved with tf.saved_model.save, a tf.function saved with a TensorSpec(None) input, several signatures in
one model. They run in a session like on TF Serving: the graph decides shapes, outputs come in the typed value
fields, gRPC also listens on a Unix socket, and a broken config file is reported in TF Serving's words."""

from __future__ import annotations

import json
import os
import urllib.request

import grpc
import pytest
from serving_helpers import Stubs, code_of, running_server

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _tf1_half_plus_two(base: str) -> str:
    """TF Serving's saved_model_half_plus_two, rebuilt: a TF1 graph, x declared [None, 1], y = 0.5 x + 2."""
    import tensorflow as tf

    v1 = tf.compat.v1
    path = os.path.join(base, "123")
    with tf.Graph().as_default(), v1.Session() as sess:
        x = v1.placeholder(tf.float32, shape=[None, 1], name="x")
        a = v1.Variable(0.5, name="a")
        b = v1.Variable(2.0, name="b")
        y = tf.add(a * x, b, name="y")
        sess.run(v1.global_variables_initializer())
        builder = v1.saved_model.builder.SavedModelBuilder(path)
        signature = v1.saved_model.signature_def_utils.predict_signature_def({"x": x}, {"y": y})
        builder.add_meta_graph_and_variables(sess, ["serve"], signature_def_map={"serving_default": signature})
        builder.save()
    return base


def _predict_x(stubs: Stubs, dims: list[int], model: str = "default", signature: str = "", output_filter=(),
               alias: str = "x"):
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    request.inputs[alias].dtype = types_pb2.DT_FLOAT
    request.inputs[alias].float_val.append(2.0)
    for d in dims:
        request.inputs[alias].tensor_shape.dim.add().size = d
    request.output_filter.extend(output_filter)
    return stubs.prediction.Predict(request, timeout=30)


@pytest.fixture(scope="module")
def tf1_model(tmp_path_factory) -> str:
    return _tf1_half_plus_two(str(tmp_path_factory.mktemp("half_plus_two")))


def test_tf1_graph_savedmodel_runs_in_a_session_with_shapes_the_graph_allows(tf1_model):
    with running_server(model_name="default", model_base_path=tf1_model) as server:
        stubs = Stubs(server.grpc_target)
        try:
            # x of shape [1] although the signature declares [-1, 1]: TF Serving feeds it and the graph answers.
            response = _predict_x(stubs, [1], output_filter=["y"])
            assert list(response.outputs["y"].float_val) == [3.0]
            assert not response.outputs["y"].tensor_content, "outputs belong in the typed value fields"
            assert response.model_spec.version.value == 123
            assert response.model_spec.signature_name == "serving_default"
        finally:
            stubs.close()
        body = json.dumps({"instances": [2.0, 3.0, 4.0]}).encode()
        with urllib.request.urlopen(urllib.request.Request(server.rest_url + "/v1/models/default:predict",
                                                           data=body)) as r:
            assert json.loads(r.read()) == {"predictions": [3.0, 3.5, 4.0]}
        with urllib.request.urlopen(urllib.request.Request(server.rest_url + "/v1/models/default:predict",
                                                           data=json.dumps({"inputs": [2.0, 3.0]}).encode())) as r:
            assert json.loads(r.read()) == {"outputs": [3.0, 3.5]}


@pytest.mark.parametrize("keras_module", ["tf_keras", "keras"])
def test_keras_sequential_saved_with_tf_saved_model_save(tmp_path, keras_module):
    """TF Serving's suite builds this with tf.keras; Keras 2 (tf_keras, TF_USE_LEGACY_KERAS=1) names the signature
    input after the Input layer ("x"), Keras 3 calls it "inputs": the same request works on both, as on TF Serving."""
    import importlib

    import tensorflow as tf

    keras = importlib.import_module(keras_module)
    model = keras.models.Sequential()
    model.add(keras.layers.Input(dtype="float32", shape=(1,), name="x"))
    model.add(keras.layers.Lambda(lambda x: x, name="y"))
    tf.saved_model.save(model, str(tmp_path / "keras" / "123"))
    alias = "x" if keras_module == "tf_keras" else "inputs"
    with running_server(model_name="default", model_base_path=str(tmp_path / "keras")) as server:
        stubs = Stubs(server.grpc_target)
        try:
            response = _predict_x(stubs, [1, 1], alias=alias)
            (output,) = response.outputs
            assert list(response.outputs[output].float_val) == [2.0]
        finally:
            stubs.close()


def test_tf_function_with_tensorspec_none_and_several_signatures(tmp_path):
    import tensorflow as tf

    root = tf.train.Checkpoint()
    root.v1, root.v2 = tf.Variable(3.0), tf.Variable(2.0)
    root.f = tf.function(lambda x: {"y": root.v1 * root.v2 * x})
    root.g = tf.function(lambda x: {"y": 2.0 + 0 * x}, input_signature=[tf.TensorSpec(None, tf.float32)])
    tf.saved_model.save(root, str(tmp_path / "fn" / "123"),
                        signatures={"serving_default": root.f.get_concrete_function(tf.TensorSpec(None, tf.float32)),
                                    "custom_signature_key": root.g})
    with running_server(model_name="default", model_base_path=str(tmp_path / "fn")) as server:
        stubs = Stubs(server.grpc_target)
        try:
            assert list(_predict_x(stubs, [1]).outputs["y"].float_val) == [12.0]
            assert list(_predict_x(stubs, []).outputs["y"].float_val) == [12.0]  # a scalar: any shape goes
            response = _predict_x(stubs, [1], signature="custom_signature_key", output_filter=["y"])
            assert list(response.outputs["y"].float_val) == [2.0]
            assert response.model_spec.signature_name == "custom_signature_key"
        finally:
            stubs.close()


def test_grpc_also_listens_on_a_unix_socket_and_takes_tf_servings_channel_arguments(tf1_model, tmp_path):
    socket_path = str(tmp_path / "tf-serving.sock")
    with running_server(model_name="default", model_base_path=tf1_model, grpc_socket_path=socket_path,
                        grpc_channel_arguments="grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb,"
                                               "grpc.so_reuseaddr=1") as server:
        for target in (f"unix:{socket_path}", server.grpc_target):
            stubs = Stubs(target)
            try:
                assert list(_predict_x(stubs, [1, 1]).outputs["y"].float_val) == [3.0]
            finally:
                stubs.close()


# serving.model_server.servable's words when a session cannot run it
FALLBACK_WARNING = "running it through TF2's object loader"


def test_the_generator_export_runs_in_a_session_like_tf_serving_without_the_fallback(tiny_saved_model, caplog):
    """The project's own export restores every variable its signatures read, so it loads into the TF1 session as in
    tensorflow_model_server (a Keras 3 model in a tf.Module would need TF2's object loader instead)."""
    import logging

    import numpy as np
    from serving_helpers import z_batch

    from serving.model_server.servable import Servable

    with caplog.at_level(logging.WARNING, logger="serving.model_server.servable"):
        servable = Servable("dcgan", 1, tiny_saved_model)
    assert FALLBACK_WARNING not in caplog.text
    assert servable._functions is None  # noqa: SLF001 - None: the signatures run in the session
    assert servable._uninitialized_variables() == []  # noqa: SLF001
    _, outputs = servable.run("serving_default", {"z": z_batch(2)}, ("images",))
    assert outputs["images"].shape == (2, 32, 32, 3) and np.isfinite(outputs["images"]).all()


def test_the_generators_in_graph_checks_still_answer_invalid_argument(tmp_path, tiny_saved_model, caplog):
    import logging

    import numpy as np
    from serving_helpers import add_version, z_batch

    add_version(tiny_saved_model, str(tmp_path / "dcgan"), 1)
    with caplog.at_level(logging.WARNING), running_server(model_name="dcgan",
                                                          model_base_path=str(tmp_path / "dcgan")) as server:
        stubs = Stubs(server.grpc_target)
        try:
            z = z_batch(2)
            images = stubs.predict({"z": z}).outputs["images"]
            assert len(images.float_val) == int(np.prod([d.size for d in images.tensor_shape.dim]))
            z[1, 3] = np.nan
            code, details = code_of(lambda: stubs.predict({"z": z}))
            assert code == grpc.StatusCode.INVALID_ARGUMENT and "finite" in details
        finally:
            stubs.close()
    assert FALLBACK_WARNING not in caplog.text  # `dcgan serve` ran it in the session, as TF Serving would


def test_a_config_file_that_does_not_parse_is_reported_in_tf_servings_words(tmp_path, capsys):
    from dcgan.cli import main

    bad = tmp_path / "bad.config"
    bad.write_text("model_config_list { config { name: 'x' base_path: '/m' } } garbage {")
    assert main(["serve", f"--model_config_file={bad}", "--port=0", "--rest_api_port=1"]) == 2
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in capsys.readouterr().err
