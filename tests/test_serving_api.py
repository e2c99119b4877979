"""The model server's TF Serving APIs, driven with the official tensorflow-serving-api stubs and with plain HTTP:
predict (gRPC; REST row and columnar), metadata, status, version/label targeting, the client, metrics, health, and
the bad-input list of issue 6 (right gRPC code / HTTP status, and the server still answers afterwards)."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from conftest import free_port
from serving_helpers import MODEL, Stubs, add_version, code_of, running_server, write_config, z_batch

MAX_REQUEST_BYTES = 1 << 20


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_saved_model):
    """Versions 1 and 2 of the tiny generator, policy `all`, labels stable=1 and canary=2."""
    root = tmp_path_factory.mktemp("served")
    base = str(root / "models" / MODEL)
    add_version(tiny_saved_model, base, 1)
    add_version(tiny_saved_model, base, 2)
    config = write_config(str(root / "models.config"), [{"name": MODEL, "base_path": base, "policy": "all",
                                                        "labels": {"stable": 1, "canary": 2}}])
    with running_server(model_config_file=config, allow_version_labels_for_unavailable_models=True,
                        max_request_bytes=MAX_REQUEST_BYTES) as server:
        stubs = Stubs(server.grpc_target)
        http = httpx.Client(base_url=server.rest_url, timeout=30)
        try:
            yield SimpleNamespace(server=server, stubs=stubs, http=http, base=base, source=tiny_saved_model)
        finally:
            http.close()
            stubs.close()


@pytest.fixture(scope="module")
def in_process(tiny_saved_model):
    from dcgan.export import LoadedGenerator

    return LoadedGenerator(tiny_saved_model)


def assert_still_serving(served):
    """A valid request after bad ones is answered, over both APIs."""
    response = served.stubs.predict({"z": z_batch(1)})
    assert tf.make_ndarray(response.outputs["images"]).shape == (1, 32, 32, 3)
    r = served.http.post(f"/v1/models/{MODEL}:predict", json={"instances": z_batch(1).tolist()})
    assert r.status_code == 200, r.text


# -- gRPC -------------------------------------------------------------------------------------------------------------
def test_grpc_predict_answers_from_the_latest_version_like_the_in_process_savedmodel(served, in_process):
    z = z_batch(3)
    response = served.stubs.predict({"z": z})
    assert (response.model_spec.name, response.model_spec.version.value) == (MODEL, 2)
    assert response.model_spec.signature_name == "serving_default"
    images = tf.make_ndarray(response.outputs["images"])
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.float32
    np.testing.assert_allclose(images, in_process.images(z), rtol=1e-6, atol=1e-6)


def test_grpc_generate_returns_png_bytes_and_the_z_of_each_seed(served):
    from dcgan.images import decode_png
    from dcgan.latent import z_from_seeds

    response = served.stubs.predict({"seed": np.array([7, 8], np.int64)}, signature="generate")
    pngs = tf.make_ndarray(response.outputs["png_bytes"])
    assert [decode_png(p).shape for p in pngs] == [(32, 32, 3), (32, 32, 3)]
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["z"]), z_from_seeds([7, 8], 100), atol=1e-6)


def test_grpc_interpolate_and_output_filter(served):
    z = z_batch(2)
    t = np.linspace(0, 1, 5, dtype=np.float32)
    response = served.stubs.predict({"z0": np.repeat(z[:1], 5, 0), "z1": np.repeat(z[1:], 5, 0), "t": t},
                                    signature="interpolate")
    path = tf.make_ndarray(response.outputs["z"])
    assert path.shape == (5, 100) and np.array_equal(path[0], z[0]) and np.array_equal(path[-1], z[1])
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = MODEL, "generate"
    request.inputs["seed"].CopyFrom(tf.make_tensor_proto(np.array([1], np.int64)))
    request.output_filter.append("z")
    assert list(served.stubs.prediction.Predict(request, timeout=30).outputs) == ["z"]


def test_grpc_metadata_lists_the_signature_defs(served):
    from tensorflow_serving.apis import get_model_metadata_pb2

    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = MODEL
    request.metadata_field.append("signature_def")
    response = served.stubs.prediction.GetModelMetadata(request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert {"serving_default", "generate", "interpolate"} <= set(signatures.signature_def)
    z = signatures.signature_def["serving_default"].inputs["z"]
    assert z.dtype == tf.float32.as_datatype_enum and [d.size for d in z.tensor_shape.dim] == [-1, 100]
    assert response.model_spec.version.value == 2


def test_grpc_status_lists_versions_and_one_version(served):
    assert served.stubs.status() == {2: ("AVAILABLE", 0, ""), 1: ("AVAILABLE", 0, "")}
    assert served.stubs.status(version=1) == {1: ("AVAILABLE", 0, "")}
    assert code_of(lambda: served.stubs.status(version=9))[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: served.stubs.status(model="nope"))[0] == grpc.StatusCode.NOT_FOUND


def test_requests_target_a_version_number_or_a_label(served):
    z = z_batch(1)
    assert served.stubs.predict({"z": z}, version=1).model_spec.version.value == 1
    assert served.stubs.predict({"z": z}, label="stable").model_spec.version.value == 1
    assert served.stubs.predict({"z": z}, label="canary").model_spec.version.value == 2
    for path, version in (("versions/1", "1"), ("labels/stable", "1"), ("labels/canary", "2")):
        r = served.http.get(f"/v1/models/{MODEL}/{path}/metadata")
        assert r.status_code == 200 and r.json()["model_spec"]["version"] == version
        r = served.http.post(f"/v1/models/{MODEL}/{path}:predict", json={"instances": z.tolist()})
        assert r.status_code == 200 and np.asarray(r.json()["predictions"]).shape == (1, 32, 32, 3)


# -- REST -------------------------------------------------------------------------------------------------------------
def test_rest_status_and_metadata_have_tf_servings_json_shape(served):
    r = served.http.get(f"/v1/models/{MODEL}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"model_version_status": [
        {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert served.http.get(f"/v1/models/{MODEL}/versions/1").json()["model_version_status"][0]["version"] == "1"
    meta = served.http.get(f"/v1/models/{MODEL}/metadata").json()
    assert meta["model_spec"] == {"name": MODEL, "signature_name": "", "version": "2"}
    z = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["z"]
    assert z["dtype"] == "DT_FLOAT" and [d["size"] for d in z["tensor_shape"]["dim"]] == ["-1", "100"]


def test_rest_predict_row_and_columnar_formats(served, in_process):
    z = z_batch(2)
    row = served.http.post(f"/v1/models/{MODEL}:predict", json={"instances": z.tolist()})
    assert row.status_code == 200, row.text
    np.testing.assert_allclose(np.asarray(row.json()["predictions"], np.float32), in_process.images(z), atol=1e-6)
    col = served.http.post(f"/v1/models/{MODEL}:predict", json={"signature_name": "serving_default",
                                                                 "inputs": {"z": z.tolist()}})
    assert np.asarray(col.json()["outputs"]).shape == (2, 32, 32, 3)
    gen = served.http.post(f"/v1/models/{MODEL}:predict", json={"signature_name": "generate", "instances": [7, 8]})
    predictions = gen.json()["predictions"]
    assert set(predictions[0]) == {"png_bytes", "z"}
    assert base64.b64decode(predictions[0]["png_bytes"]["b64"]).startswith(b"\x89PNG")
    grpc_png = tf.make_ndarray(served.stubs.predict({"seed": np.array([7], np.int64)}, "generate")
                               .outputs["png_bytes"])[0]
    assert base64.b64decode(predictions[0]["png_bytes"]["b64"]) == grpc_png
    cols = served.http.post(f"/v1/models/{MODEL}:predict", json={
        "signature_name": "interpolate", "inputs": {"z0": [z[0].tolist()] * 4, "z1": [z[1].tolist()] * 4,
                                                    "t": [0, 1 / 3, 2 / 3, 1]}})
    assert cols.status_code == 200 and np.asarray(cols.json()["outputs"]["z"]).shape == (4, 100)


# -- bad input --------------------------------------------------------------------------------------------------------
def _grpc_bad_requests():
    z = z_batch(1)
    nan, inf = z.copy(), z.copy()
    nan[0, 3], inf[0, 5] = np.nan, np.inf
    return [
        ("wrong dtype (float64 z)", {"inputs": {"z": z.astype(np.float64)}},
         grpc.StatusCode.INVALID_ARGUMENT, "Expects arg[0] to be float but double is provided"),
        ("wrong dtype (float seed)", {"inputs": {"seed": np.array([1.5], np.float32)}, "signature": "generate"},
         grpc.StatusCode.INVALID_ARGUMENT, "to be int64 but float is provided"),
        ("wrong shape", {"inputs": {"z": np.zeros((1, 5), np.float32)}},
         # the session names the function's argument (_arg_serving_default_z_0_0), as tensorflow_model_server does
         grpc.StatusCode.INVALID_ARGUMENT, "z_0_0 [1,5] is not compatible with expected shape [?,100]"),
        ("wrong rank", {"inputs": {"z": np.zeros(100, np.float32)}}, grpc.StatusCode.INVALID_ARGUMENT, "shape"),
        ("NaN in z", {"inputs": {"z": nan}}, grpc.StatusCode.INVALID_ARGUMENT, "z must be finite"),
        ("Inf in z", {"inputs": {"z": inf}}, grpc.StatusCode.INVALID_ARGUMENT, "z must be finite"),
        ("batch over the limit", {"inputs": {"z": np.zeros((1025, 100), np.float32)}},
         grpc.StatusCode.INVALID_ARGUMENT, "batch size must be at most 1024"),
        ("too many seeds", {"inputs": {"seed": np.arange(1025, dtype=np.int64)}, "signature": "generate"},
         grpc.StatusCode.INVALID_ARGUMENT, "batch size must be at most 1024"),
        ("interpolation t outside [0, 1]", {"inputs": {"z0": z, "z1": z, "t": np.array([1.5], np.float32)},
                                            "signature": "interpolate"},
         grpc.StatusCode.INVALID_ARGUMENT, "t must be in [0, 1]"),
        ("interpolation rows mismatched", {"inputs": {"z0": z, "z1": z_batch(2), "t": np.array([0.5], np.float32)},
                                           "signature": "interpolate"},
         grpc.StatusCode.INVALID_ARGUMENT, "same batch size"),
        ("unknown model", {"inputs": {"z": z}, "model": "nope"},
         grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
        ("unknown version", {"inputs": {"z": z}, "version": 9},
         grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(dcgan, 9)"),
        ("unknown label", {"inputs": {"z": z}, "label": "nope"},
         grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: nope"),
        ("model name with ../", {"inputs": {"z": z}, "model": "../../etc/passwd"},
         grpc.StatusCode.NOT_FOUND, "Servable not found"),
        ("no model name", {"inputs": {"z": z}, "model": ""},
         grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified"),
        ("unknown signature", {"inputs": {"z": z}, "signature": "nope"},
         grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found.'),
        ("missing input", {"inputs": {}}, grpc.StatusCode.INVALID_ARGUMENT, "input size does not match signature"),
        ("misnamed input", {"inputs": {"x": z}}, grpc.StatusCode.INVALID_ARGUMENT,
         "input tensor alias not found in signature: x"),
        ("tensor shape larger than its data", {"inputs": {"z": tf.make_tensor_proto(0.0, shape=[10**6, 10**6])}},
         grpc.StatusCode.INVALID_ARGUMENT, "tensor parsing error: z"),
        ("oversized request", {"inputs": {"z": np.zeros((3000, 100), np.float32)}},
         grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
    ]


@pytest.mark.parametrize("case", _grpc_bad_requests(), ids=lambda c: c[0])
def test_grpc_bad_input_gets_the_right_status_and_the_server_keeps_serving(served, case):
    _, kwargs, code, message = case
    got, details = code_of(lambda: served.stubs.predict(**kwargs))
    assert got == code, details
    assert message in details
    assert_still_serving(served)


def test_grpc_unsupported_calls_are_unimplemented_with_a_clear_message(served):
    from tensorflow_serving.apis import (
        classification_pb2,
        get_model_metadata_pb2,
        inference_pb2,
        regression_pb2,
    )

    for call, request in ((served.stubs.prediction.Classify, classification_pb2.ClassificationRequest()),
                          (served.stubs.prediction.Regress, regression_pb2.RegressionRequest()),
                          (served.stubs.prediction.MultiInference, inference_pb2.MultiInferenceRequest())):
        code, details = code_of(lambda c=call, r=request: c(r, timeout=10))
        assert code == grpc.StatusCode.UNIMPLEMENTED and "Use Predict" in details
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = MODEL
    request.metadata_field.append("everything")
    code, details = code_of(lambda: served.stubs.prediction.GetModelMetadata(request, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Metadata field everything is not supported" in details


def _rest_bad_requests():
    z = z_batch(1)
    return [
        ("malformed JSON", "POST", f"/v1/models/{MODEL}:predict", b'{"instances": [[0.1, 0.2', 400,
         "JSON Parse error"),
        ("not UTF-8", "POST", f"/v1/models/{MODEL}:predict", b'{"instances": [["\xff\xfe"]]}', 400, "JSON Parse error"),
        ("wrong dtype", "POST", f"/v1/models/{MODEL}:predict", {"instances": [["a"] * 100]}, 400,
         "is not of expected type: float"),
        ("wrong shape", "POST", f"/v1/models/{MODEL}:predict", {"instances": [[0.5] * 7]}, 400,
         "z_0_0 [1,7] is not compatible with expected shape [?,100]"),  # the session's name, as on TF Serving
        ("NaN in z", "POST", f"/v1/models/{MODEL}:predict", b'{"instances": [[NaN' + b", 0" * 99 + b"]]}", 400,
         "z must be finite"),
        ("batch over the limit", "POST", f"/v1/models/{MODEL}:predict", {"inputs": [[0] * 100] * 1025}, 400,
         "batch size must be at most 1024"),
        ("unknown model", "POST", "/v1/models/nope:predict", {"instances": z.tolist()}, 404,
         "Servable not found for request: Latest(nope)"),
        ("unknown version", "POST", f"/v1/models/{MODEL}/versions/9:predict", {"instances": z.tolist()}, 404,
         "Servable not found for request: Specific(dcgan, 9)"),
        ("unknown label", "POST", f"/v1/models/{MODEL}/labels/nope:predict", {"instances": z.tolist()}, 400,
         "Unrecognized servable version label: nope"),
        ("model name with ../", "POST", "/v1/models/..%2F..%2Fetc%2Fpasswd:predict", {"instances": z.tolist()},
         404, "Latest(../../etc/passwd)"),
        ("model path with ../ (normalised by the client)", "GET", "/v1/models/../../etc/passwd", None, 404,
         "Not found"),
        ("unknown signature", "POST", f"/v1/models/{MODEL}:predict",
         {"signature_name": "nope", "instances": z.tolist()}, 400, 'Serving signature name: "nope" not found'),
        ("unknown model status", "GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        ("predict with GET", "GET", f"/v1/models/{MODEL}:predict", None, 400, "Malformed request: GET"),
        ("classify", "POST", f"/v1/models/{MODEL}:classify", {"examples": [{}]}, 501, "Use :predict"),
        ("oversized body", "POST", f"/v1/models/{MODEL}:predict", b" " * (MAX_REQUEST_BYTES + 1), 413,
         "exceeds this server's limit"),
    ]


@pytest.mark.parametrize("case", _rest_bad_requests(), ids=lambda c: c[0])
def test_rest_bad_input_gets_the_right_status_and_json_error(served, case):
    _, method, path, body, status, message = case
    content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    r = served.http.request(method, path, content=content)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert set(r.json()) == {"error"} and message in r.json()["error"]
    assert_still_serving(served)


def test_unknown_paths_are_404(served):
    assert served.http.get("/nothing/here").status_code == 404


# -- client, metrics, health ------------------------------------------------------------------------------------------
def test_python_client_generates_targets_versions_and_reads_status(served):
    from serving.client import ServingClient

    with ServingClient(served.server.grpc_target, timeout=20) as client:
        faces = client.generate([3, 4, 5], model=MODEL, label="stable")
        assert len(faces.png) == 3 and faces.z.shape == (3, 100) and faces.version == 1
        assert client.images(z_batch(2), model=MODEL, version=2).outputs["images"].shape == (2, 32, 32, 3)
        path = client.interpolate(z_batch(1)[0], z_batch(1, seed=1)[0], 3, model=MODEL)
        assert path.outputs["images"].shape == (3, 32, 32, 3) and path.version == 2
        assert {s.version: s.state for s in client.status(MODEL)} == {1: "AVAILABLE", 2: "AVAILABLE"}
        assert set(client.metadata(model=MODEL, label="canary").signature_defs) >= {"generate", "interpolate"}
        with pytest.raises(ValueError):
            client.images(z_batch(1), model=MODEL, version=1, label="stable")


def test_python_client_retries_unavailable_then_reports_attempts():
    from serving.client import ServingClient, ServingClientError

    with ServingClient(f"127.0.0.1:{free_port()}", timeout=2, retries=2, backoff_s=0.05) as client:
        with pytest.raises(ServingClientError) as info:
            client.status(MODEL)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE and info.value.attempts == 3


def test_metrics_count_requests_errors_and_latency_per_model_and_version(served):
    served.stubs.predict({"z": z_batch(1)}, version=1)
    code_of(lambda: served.stubs.predict({"z": z_batch(1).astype(np.float64)}, version=1))
    assert served.http.post("/v1/models/nope:predict", json={"instances": [[0] * 100]}).status_code == 404
    text = served.http.get("/monitoring/prometheus/metrics").text
    assert 'dcgan_serving_requests_total{api="grpc",code="OK",method="predict",model="dcgan",version="1"}' in text
    assert ('dcgan_serving_request_errors_total{api="grpc",code="INVALID_ARGUMENT",method="predict",model="dcgan",'
            'version="1"}') in text
    assert 'dcgan_serving_request_latency_seconds_bucket{api="grpc",le="0.5",method="predict",model="dcgan"' in text
    # Unknown model names share one label value (clients cannot create unbounded time series).
    assert 'dcgan_serving_requests_total{api="rest",code="NOT_FOUND",method="predict",model="_unknown_"' in text
    assert 'model="nope"' not in text
    assert 'dcgan_serving_model_version_available{model="dcgan",version="2"} 1.0' in text


def test_health_endpoints(served):
    assert served.http.get("/healthz").json() == {"status": "ok"}
    ready = served.http.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "models": [MODEL]}
