"""Unit specifications of the serving package that need no model: config files, version policies, TF Serving's JSON
tensor rules, TensorProto conversion, the batch scheduler and the REST path grammar."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest

from serving import tensors
from serving.errors import Code, ServingError
from serving.model_server import config as cfg
from serving.model_server.batching import SharedBatchScheduler
from serving.model_server.config import BatchingOptions
from serving.model_server.rest import RestApi

CONFIG = """
model_config_list {
  config {
    name: "dcgan"
    base_path: "/models/dcgan"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 3 versions: 5 } }
    version_labels { key: "stable" value: 3 }
    version_labels { key: "canary" value: 5 }
  }
  config { name: "other" base_path: "/models/other" model_platform: "tensorflow" }
}
"""


def _error(fn, *args, **kwargs) -> ServingError:
    with pytest.raises(ServingError) as info:
        fn(*args, **kwargs)
    return info.value


# -- model server config ----------------------------------------------------------------------------------------------
def test_model_config_text_proto_round_trips_with_policies_and_labels(tmp_path):
    config = cfg.parse_model_server_config(CONFIG)
    cfg.validate_model_server_config(config)
    models = cfg.model_configs(config)
    assert sorted(models) == ["dcgan", "other"]
    assert dict(models["dcgan"].version_labels) == {"stable": 3, "canary": 5}
    path = cfg.write_model_server_config(str(tmp_path / "models.config"), config)
    assert cfg.read_model_server_config(path) == config
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")], "the atomic write left a temp file"


def test_model_config_errors_name_the_file_and_the_problem(tmp_path):
    bad = tmp_path / "bad.config"
    bad.write_text("model_config_list { config { nme: 'x' } }")
    e = _error(cfg.read_model_server_config, str(bad))
    assert e.code == Code.INVALID_ARGUMENT and str(bad) in e.message and "nme" in e.message
    dup = cfg.parse_model_server_config('model_config_list { config { name: "a" base_path: "/a" } '
                                        'config { name: "a" base_path: "/b" } }')
    assert "multiple times" in _error(cfg.validate_model_server_config, dup).message
    relative = cfg.parse_model_server_config('model_config_list { config { name: "a" base_path: "models/a" } }')
    assert "absolute path" in _error(cfg.validate_model_server_config, relative).message
    other = cfg.parse_model_server_config('model_config_list { config { name: "a" base_path: "/a" '
                                          'model_platform: "pytorch" } }')
    assert "unsupported platform" in _error(cfg.validate_model_server_config, other).message


def test_version_policies_select_like_tf_serving():
    config = cfg.parse_model_server_config(CONFIG)
    dcgan, other = cfg.model_configs(config)["dcgan"], cfg.model_configs(config)["other"]
    assert cfg.select_versions(other, [1, 7, 3]) == {7}  # unset = latest 1
    assert cfg.select_versions(dcgan, [1, 3, 4]) == {3}  # specific: only those on disk
    other.model_version_policy.latest.num_versions = 2
    assert cfg.select_versions(other, [1, 7, 3]) == {3, 7}
    other.model_version_policy.all.SetInParent()
    assert cfg.select_versions(other, [1, 7, 3]) == {1, 3, 7}
    assert cfg.select_versions(other, []) == set()


def test_only_integer_directories_are_versions(tmp_path):
    for name in ("1", "20", ".3.tmp-123-456", "tmp", "4.bak", "-5"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file, not a folder")
    assert sorted(cfg.list_version_dirs(str(tmp_path))) == [1, 20]


def test_batching_and_monitoring_files_parse_as_tf_serving_text_protos(tmp_path):
    path = tmp_path / "batching.txt"
    path.write_text("max_batch_size { value: 32 }\nbatch_timeout_micros { value: 1000 }\n"
                    "max_enqueued_batches { value: 4 }\nnum_batch_threads { value: 2 }\n"
                    "allowed_batch_sizes: 8\nallowed_batch_sizes: 32\n")
    options = cfg.parse_batching_parameters(str(path))
    assert options == BatchingOptions(32, 1000, 4, 2, (8, 32))
    assert cfg.parse_batching_parameters(None) == BatchingOptions()  # TF Serving's defaults
    path.write_text("max_batch_size { value: 32 }\nallowed_batch_sizes: 8\nallowed_batch_sizes: 16\n")
    assert "must equal max_batch_size" in _error(cfg.parse_batching_parameters, str(path)).message
    path.write_text("max_batch_size: 32\n")  # a wrapper type needs { value: ... }
    assert _error(cfg.parse_batching_parameters, str(path)).code == Code.INVALID_ARGUMENT
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true, path: "/metrics" }')
    assert cfg.parse_monitoring_config(str(monitoring)) == "/metrics"
    monitoring.write_text("prometheus_config { enable: true }")
    assert cfg.parse_monitoring_config(str(monitoring)) == "/monitoring/prometheus/metrics"
    monitoring.write_text("prometheus_config { enable: false }")
    assert cfg.parse_monitoring_config(str(monitoring)) is None


# -- REST JSON tensors (json_tensor.cc) --------------------------------------------------------------------------------
Z = {"z": (tensors.DT_FLOAT, (-1, 3))}
MULTI = {"z0": (tensors.DT_FLOAT, (3,)), "z1": (tensors.DT_FLOAT, (3,)), "steps": (tensors.DT_INT32, ())}


def _parse(body, infos=Z):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return tensors.parse_predict_json(raw, lambda signature: infos)


def test_row_format_batches_instances_and_columnar_format_takes_tensors_as_they_are():
    signature, inputs, fmt = _parse({"instances": [[1, 2, 3], [4.5, 5, 6]]})
    assert (signature, fmt) == ("", tensors.JsonFormat.ROW)
    assert inputs["z"].dtype == np.float32 and inputs["z"].tolist() == [[1, 2, 3], [4.5, 5, 6]]
    _, inputs, fmt = _parse({"signature_name": "interpolate", "inputs": {"z0": [1, 2, 3], "z1": [0, 0, 1],
                                                                         "steps": 4}}, MULTI)
    assert fmt == tensors.JsonFormat.COLUMNAR and inputs["steps"].shape == () and inputs["steps"].dtype == np.int32
    _, inputs, _ = _parse({"instances": [{"z0": [1, 2, 3], "z1": [1, 1, 1], "steps": 2}]}, MULTI)
    assert inputs["z0"].shape == (1, 3) and inputs["steps"].tolist() == [2]
    _, inputs, _ = _parse(b'{"inputs": [[NaN, Infinity, -Infinity]]}')
    assert np.isnan(inputs["z"][0, 0]) and np.isinf(inputs["z"][0, 1])
    _, inputs, _ = _parse({"inputs": [{"b64": "AAEC"}, "text"]}, {"seed_bytes": (tensors.DT_STRING, (-1,))})
    assert inputs["seed_bytes"].tolist() == [b"\x00\x01\x02", b"text"]


@pytest.mark.parametrize("body, infos, message", [
    (b"", Z, "The document is empty"),
    (b'{"instances": [1, 2', Z, "JSON Parse error"),
    ([1, 2], Z, "Is not object"),
    ({"signature_name": 3, "instances": [[1, 2, 3]]}, Z, "'signature_name' key must be a string value"),
    ({"instances": [[1, 2, 3]], "inputs": [[1, 2, 3]]}, Z, "expecting only one of 'inputs' or 'instances'"),
    ({"instances": []}, Z, "No values in 'instances' array"),
    ({"instances": {"z": 1}}, Z, "to be an list/array"),
    ({"z": [[1, 2, 3]]}, Z, "Missing 'inputs' or 'instances' key"),
    ({"instances": [["a", "b", "c"]]}, Z, "is not of expected type: float"),
    ({"instances": [[True, 1, 2]]}, Z, "is not of expected type: float"),
    ({"instances": [[16777217, 1, 2]]}, Z, "without loss of precision"),
    ({"instances": [[1e39, 1, 2]]}, Z, "without loss of precision"),
    ({"instances": [[1, 2, 3], [1, 2]]}, Z, "Expecting tensor size: 3 but got: 2"),
    ({"inputs": [[1, 2, 3], [1, 2]]}, Z, "Encountered list at unexpected size"),
    ({"inputs": [[1, [2], 3]]}, Z, "Encountered list at unexpected level"),
    ({"inputs": [[1, 2, 3], 4]}, Z, "found at incorrect level"),
    ({"instances": [[1, 2, 3]]}, MULTI, "expecting list of objects as multiple input tensors"),
    ({"instances": [{"z0": [1, 2, 3], "z1": [1, 2, 3]}]}, MULTI, "must only have keys"),
    ({"instances": [{"z0": [1, 2, 3], "z1": [1, 2, 3], "steps": 1, "x": 1}]}, MULTI, "does not have named input: x"),
    ({"inputs": {"z0": [1, 2, 3], "z1": [1, 2, 3]}}, MULTI, "Missing named input: steps"),
    ({"inputs": [1, 2, 3]}, MULTI, "expecting an object as multiple input tensors"),
    ({"inputs": {"z0": [1, 2, 3], "z1": [1, 2, 3], "steps": 1.5}}, MULTI, "is not of expected type: int32"),
    ({"inputs": {"z0": [1, 2, 3], "z1": [1, 2, 3], "steps": 2**40}}, MULTI, "is not of expected type: int32"),
])
def test_malformed_json_bodies_are_invalid_argument_with_tf_serving_messages(body, infos, message):
    e = _error(_parse, body, infos)
    assert e.code == Code.INVALID_ARGUMENT and e.http_status == 400
    assert message in e.message, e.message


def test_responses_use_predictions_for_rows_outputs_for_columns_and_b64_for_bytes():
    images = np.array([[0.5, -1.0], [0.25, 2.0]], np.float32)
    assert json.loads(tensors.make_json_from_tensors({"images": images}, tensors.JsonFormat.ROW)) == {
        "predictions": [[0.5, -1.0], [0.25, 2.0]]}
    assert json.loads(tensors.make_json_from_tensors({"images": images}, tensors.JsonFormat.COLUMNAR)) == {
        "outputs": [[0.5, -1.0], [0.25, 2.0]]}
    png = np.array([b"\x89PNG", b"\x00"], dtype=object)
    rows = json.loads(tensors.make_json_from_tensors({"png_bytes": png, "z": images}, tensors.JsonFormat.ROW))
    assert rows == {"predictions": [{"png_bytes": {"b64": "iVBORw=="}, "z": [0.5, -1.0]},
                                    {"png_bytes": {"b64": "AA=="}, "z": [0.25, 2.0]}]}
    text = tensors.make_json_from_tensors({"x": np.array([np.nan, np.inf, 0.1], np.float32)},
                                          tensors.JsonFormat.COLUMNAR)
    assert "NaN" in text and "Infinity" in text
    assert np.float32(json.loads(text)["outputs"][2]) == np.float32(0.1)  # float32 values read back exactly
    e = _error(tensors.make_json_from_tensors, {"a": np.zeros(2), "b": np.zeros(3)}, tensors.JsonFormat.ROW)
    assert "inconsistent batch size" in e.message


# -- TensorProto ------------------------------------------------------------------------------------------------------
def test_tensor_protos_convert_both_ways_and_refuse_unsafe_ones():
    import tensorflow as tf

    for value in (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, -2], np.int64),
                  np.array([b"a", b"bc"], dtype=object), np.array(True)):
        back = tensors.tensor_proto_to_ndarray(tf.make_tensor_proto(value))
        assert back.shape == value.shape and back.tolist() == value.tolist()
        assert tf.make_ndarray(tensors.ndarray_to_tensor_proto(value)).tolist() == value.tolist()
    repeated = tf.make_tensor_proto(0.0, shape=[2, 2])  # one value, repeated (TF semantics)
    assert tensors.tensor_proto_to_ndarray(repeated).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    huge = tf.make_tensor_proto(0.0, shape=[100000, 100000])
    assert "over this server's limit" in _error(tensors.tensor_proto_to_ndarray, huge).message
    short = tf.make_tensor_proto(np.zeros((2, 2), np.float32))
    short.tensor_content = short.tensor_content[:-4]
    assert "tensor_content has" in _error(tensors.tensor_proto_to_ndarray, short).message


# -- batching ---------------------------------------------------------------------------------------------------------
def test_batch_scheduler_merges_concurrent_requests_pads_and_splits():
    seen = []

    def double(inputs):
        seen.append(len(inputs["x"]))
        time.sleep(0.05)
        return {"y": inputs["x"] * 2}

    scheduler = SharedBatchScheduler(BatchingOptions(max_batch_size=8, batch_timeout_micros=500_000,
                                                     num_batch_threads=1, allowed_batch_sizes=(4, 8)))
    try:
        queue = scheduler.queue("m/1/serving_default", double)
        results = {}

        def call(i):
            results[i] = queue.submit({"x": np.full((1, 2), i, np.float32)}, timeout=10)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(results[i]["y"].tolist() == [[2 * i, 2 * i]] for i in range(6))
        assert sum(seen) >= 6 and all(s in (4, 8) for s in seen), f"batches were padded to allowed sizes: {seen}"
        assert len(seen) < 6, f"concurrent requests were batched: {seen}"
        e = _error(queue.submit, {"x": np.zeros((9, 2), np.float32)})
        assert e.code == Code.INVALID_ARGUMENT and "Task size 9 is larger than maximum input batch size 8" in e.message
        e = _error(queue.submit, {"x": np.zeros((2, 2), np.float32), "s": np.zeros(3, np.float32)})
        assert "equal 0th-dimension size" in e.message
        assert "at least one dimension" in _error(queue.submit, {"x": np.float32(1)}).message
    finally:
        scheduler.stop()


def test_full_batch_queue_sheds_load_with_unavailable():
    running, release = threading.Event(), threading.Event()

    def slow(inputs):
        running.set()
        release.wait(10)
        return {"y": inputs["x"]}

    scheduler = SharedBatchScheduler(BatchingOptions(max_batch_size=1, max_enqueued_batches=1, num_batch_threads=1))
    busy = [threading.Thread(target=lambda: queue.submit({"x": np.zeros((1, 1))})) for _ in range(2)]
    try:
        queue = scheduler.queue("m/1/s", slow)
        busy[0].start()
        assert running.wait(10), "the first request never ran"
        busy[1].start()  # waits in the queue, which now holds its one allowed batch
        deadline = time.monotonic() + 10
        while not queue.batches and time.monotonic() < deadline:
            time.sleep(0.01)
        e = _error(queue.submit, {"x": np.zeros((1, 1))})
        assert e.code == Code.UNAVAILABLE and "queue to which this task was submitted is full" in e.message
    finally:
        release.set()
        for t in busy:
            if t.is_alive() or t.ident:
                t.join()
        scheduler.stop()


# -- REST paths (http_rest_api_util.cc) --------------------------------------------------------------------------------
@pytest.mark.parametrize("method, path, parsed", [
    ("POST", "/v1/models/dcgan:predict", ("dcgan", None, None, "predict", "")),
    ("POST", "/v1/models/dcgan/versions/3:predict", ("dcgan", 3, None, "predict", "")),
    ("POST", "/v1/models/dcgan/labels/canary:predict", ("dcgan", None, "canary", "predict", "")),
    ("POST", "/v1/models/..%2F..%2Fetc:predict", ("../../etc", None, None, "predict", "")),
    ("GET", "/v1/models/dcgan", ("dcgan", None, None, "", "")),
    ("GET", "/v1/models/dcgan/versions/3/metadata", ("dcgan", 3, None, "", "metadata")),
    ("GET", "/v1/models/dcgan/labels/stable", ("dcgan", None, "stable", "", "")),
    ("GET", "/v1/models/dcgan:predict", None),
    ("POST", "/v1/models/dcgan", None),
    ("POST", "/v1/models/dcgan/versions/x:predict", None),
    ("DELETE", "/v1/models/dcgan", None),
])
def test_rest_paths_parse_with_tf_servings_grammar(method, path, parsed):
    assert RestApi._parse(method, path) == parsed


def test_http_statuses_follow_tf_servings_mapping():
    expected = {Code.INVALID_ARGUMENT: 400, Code.FAILED_PRECONDITION: 400, Code.NOT_FOUND: 404,
                Code.RESOURCE_EXHAUSTED: 429, Code.UNIMPLEMENTED: 501, Code.UNAVAILABLE: 503,
                Code.DEADLINE_EXCEEDED: 504, Code.INTERNAL: 500}
    assert {code: ServingError(code, "").http_status for code in expected} == expected


def test_json_bodies_are_capped_in_values_and_depth_before_python_objects_are_built():
    infos = lambda _sig: {"x": (tensors.DT_FLOAT, None)}  # noqa: E731
    many = json.dumps({"instances": [0.5] * 101}).encode()
    message = _error(tensors.parse_predict_json, many, infos, max_elements=100).message
    assert "more than 100 values" in message
    deep = ('{"inputs": ' + "[" * 300 + "1" + "]" * 300 + "}").encode()
    assert "nested deeper than" in _error(tensors.parse_predict_json, deep, infos).message
    # At the limits nothing a TF Serving client could send is refused: rank 8, 100 values.
    ok = json.dumps({"inputs": np.zeros([1] * 7 + [100]).tolist()}).encode()
    assert tensors.parse_predict_json(ok, infos, max_elements=100)[1]["x"].shape == (1,) * 7 + (100,)


def test_responses_fill_the_typed_value_fields_like_tf_serving():
    float_proto = tensors.ndarray_to_tensor_proto(np.array([[1.5, 2.0]], np.float32))
    assert list(float_proto.float_val) == [1.5, 2.0] and not float_proto.tensor_content
    assert [d.size for d in float_proto.tensor_shape.dim] == [1, 2]
    assert list(tensors.ndarray_to_tensor_proto(np.array([7], np.int64)).int64_val) == [7]
    assert list(tensors.ndarray_to_tensor_proto(np.array([3], np.uint8)).int_val) == [3]
    assert list(tensors.ndarray_to_tensor_proto(np.array([True])).bool_val) == [True]


def test_request_body_limit_is_one_function_for_the_rest_api_and_the_studio():
    import asyncio

    from serving.http_body import BodyTooLarge, read_body

    async def run(headers, chunks, limit):
        messages = iter([{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                         for i, c in enumerate(chunks)])

        async def receive():
            return next(messages)

        return await read_body({"headers": headers}, receive, limit)

    assert asyncio.run(run([], [b"ab", b"cd"], 4)) == b"abcd"
    with pytest.raises(BodyTooLarge):
        asyncio.run(run([(b"content-length", b"5")], [b"abcde"], 4))
    with pytest.raises(BodyTooLarge):
        asyncio.run(run([], [b"abc", b"de"], 4))
    import serving.model_server.rest
    import serving.studio.app

    assert serving.model_server.rest.read_body is read_body and serving.studio.app.read_body is read_body
