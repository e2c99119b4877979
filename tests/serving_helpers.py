"""Helpers of the serving tests: model directories made from the `tiny_saved_model` fixture, config files, an
in-process server that is always stopped, and the official TF Serving stubs."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable

import grpc
import numpy as np

MODEL = "dcgan"


def add_version(source: str, base: str, version: int | str) -> str:
    """Copy a SavedModel directory to `<base>/<version>/` (atomically: copy to a dot-folder, then rename)."""
    os.makedirs(base, exist_ok=True)
    target = os.path.join(base, str(version))
    tmp = os.path.join(base, f".{version}.tmp")
    shutil.copytree(source, tmp)
    os.replace(tmp, target)
    return target


def write_config(path: str, models: list[dict]) -> str:
    """models: [{name, base_path, policy: 'latest'|'all'|[versions], labels: {label: version}}]."""
    from serving.model_server import config as cfg

    config = cfg.empty_model_server_config()
    for m in models:
        entry = config.model_config_list.config.add(name=m["name"], base_path=m["base_path"],
                                                    model_platform="tensorflow")
        policy = m.get("policy", "latest")
        if policy == "all":
            entry.model_version_policy.all.SetInParent()
        elif isinstance(policy, (list, tuple)):
            entry.model_version_policy.specific.versions.extend(policy)
        for label, version in m.get("labels", {}).items():
            entry.version_labels[label] = version
    return cfg.write_model_server_config(path, config)


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - keep polling, report the last failure
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


@contextlib.contextmanager
def running_server(**options):
    """An in-process ModelServer on free loopback ports, stopped on exit whatever happens."""
    from serving.model_server.server import EPHEMERAL_PORT, ModelServer, ServerOptions

    opts = {"port": EPHEMERAL_PORT, "rest_api_port": EPHEMERAL_PORT, "file_system_poll_wait_seconds": 0.2,
            "shutdown_grace_seconds": 2, **options}
    server = ModelServer(ServerOptions(**opts))
    try:
        server.start()
        yield server
    finally:
        server.stop(grace=1)


class Stubs:
    """The official tensorflow-serving-api stubs on one channel."""

    def __init__(self, target: str):
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.model = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def predict(self, inputs: dict, signature: str = "", model: str = MODEL, version: int | None = None,
                label: str | None = None, timeout: float = 30):
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        if signature:
            request.model_spec.signature_name = signature
        if version is not None:
            request.model_spec.version.value = version
        if label is not None:
            request.model_spec.version_label = label
        for k, v in inputs.items():
            request.inputs[k].CopyFrom(v if hasattr(v, "tensor_shape") else tf.make_tensor_proto(v))
        return self.prediction.Predict(request, timeout=timeout)

    def status(self, model: str = MODEL, version: int | None = None):
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        response = self.model.GetModelStatus(request, timeout=10)
        name = get_model_status_pb2.ModelVersionStatus.State.Name
        return {s.version: (name(s.state), s.status.error_code, s.status.error_message)
                for s in response.model_version_status}


def code_of(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    """Run a gRPC call that must fail; its status code and details."""
    try:
        call()
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError("the call succeeded but was expected to fail")


def z_batch(n: int, z_dim: int = 100, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, z_dim)).astype(np.float32)
