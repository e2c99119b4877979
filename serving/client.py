"""A Python client of the model server (or of a real TF Serving), over the official tensorflow-serving-api stubs.

    with ServingClient("127.0.0.1:8500") as client:
        faces = client.generate([7, 8, 9], model="dcgan", label="canary")   # PNG bytes + the z of each face
        images = client.images(z, model="dcgan", version=3).outputs["images"]
        client.status("dcgan")                                             # [VersionState(version=3, state=...)]

Every call has a deadline (`timeout`, default 30 s) and is retried with exponential backoff when the server answers
UNAVAILABLE (not started yet, restarting, batch queue full); other errors raise ServingClientError at once.
A request targets the latest version, a `version` number or a `label` (not both).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    status_pb2,
)

from serving import tensors

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_MESSAGE_BYTES = 256 << 20
GENERATE_CHUNK = 256  # seeds per request when generating many faces


class ServingClientError(Exception):
    """A failed call: the gRPC status code, the server's message, and how many attempts were made."""

    def __init__(self, code: grpc.StatusCode, details: str, attempts: int = 1, method: str = ""):
        super().__init__(f"{method + ': ' if method else ''}{code.name}: {details}"
                         + (f" (after {attempts} attempts)" if attempts > 1 else ""))
        self.code, self.details, self.attempts, self.method = code, details, attempts, method


@dataclass
class PredictResult:
    outputs: dict[str, np.ndarray]
    model: str
    version: int
    signature: str


@dataclass
class GeneratedFaces:
    png: list[bytes]
    z: np.ndarray
    seeds: list[int]
    model: str
    version: int


@dataclass(frozen=True)
class VersionState:
    version: int
    state: str  # START, LOADING, AVAILABLE, UNLOADING, END
    error_code: str = "OK"
    error_message: str = ""


@dataclass
class ModelMetadata:
    model: str
    version: int
    signature_defs: dict = field(default_factory=dict)  # name → tensorflow.SignatureDef


def model_spec(spec, model: str, version: int | None = None, label: str | None = None, signature: str = ""):
    """Fill a ModelSpec: latest version, a version number, or a label."""
    if version is not None and label:
        raise ValueError("give a version or a label, not both")
    spec.name = model
    if version is not None:
        spec.version.value = int(version)
    elif label:
        spec.version_label = label
    if signature:
        spec.signature_name = signature
    return spec


class ServingClient:
    def __init__(self, target: str, *, timeout: float = DEFAULT_TIMEOUT_S, retries: int = 3, backoff_s: float = 0.2,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, canary_share: float = 0.0):
        """`canary_share` (0..1): that share of the Predict requests that name neither a version nor a label go to
        the `canary` label (TF Serving labels route nothing by themselves); spread evenly (a credit counter, not
        random), and back to the default version when the model has no canary. `split_counts` counts both."""
        if not 0.0 <= canary_share <= 1.0:
            raise ValueError(f"canary_share must be within 0..1, got {canary_share}")
        self.target, self.timeout, self.retries, self.backoff_s = target, timeout, retries, backoff_s
        self.canary_share, self._canary_credit = canary_share, 0.0
        self.split_counts = {"canary": 0, "default": 0}
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", max_message_bytes),
                                                              ("grpc.max_send_message_length", max_message_bytes)])
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> ServingClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method, request, timeout: float | None, name: str):
        timeout = self.timeout if timeout is None else timeout
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(request, timeout=timeout)
            except grpc.RpcError as e:
                code = e.code() if hasattr(e, "code") else grpc.StatusCode.UNKNOWN
                if code == grpc.StatusCode.UNAVAILABLE and attempt <= self.retries:
                    time.sleep(self.backoff_s * 2 ** (attempt - 1))
                    continue
                details = e.details() if hasattr(e, "details") else str(e)
                raise ServingClientError(code, details or "", attempt, name) from None

    def take_canary_turn(self) -> bool:
        """Whether the next request that names no label goes to `canary` under `canary_share` (a credit counter:
        exactly that share, spread evenly). Callers that route requests themselves (the studio) count what was served
        in `split_counts`."""
        if self.canary_share <= 0.0:
            return False
        self._canary_credit += self.canary_share
        if self._canary_credit >= 1.0:
            self._canary_credit -= 1.0
            return True
        return False

    # -- PredictionService --------------------------------------------------------------------------------------------
    def predict(self, inputs: Mapping[str, np.ndarray], *, model: str, signature: str = "serving_default",
                version: int | None = None, label: str | None = None, output_filter: Sequence[str] = (),
                timeout: float | None = None) -> PredictResult:
        if version is None and label is None and self.canary_share > 0.0:
            if self.take_canary_turn():
                try:
                    result = self.predict(inputs, model=model, signature=signature, label="canary",
                                          output_filter=output_filter, timeout=timeout)
                except ServingClientError as e:
                    if e.code not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
                        raise  # no canary label: serve the default version below
                else:
                    self.split_counts["canary"] += 1
                    return result
            self.split_counts["default"] += 1
        request = predict_pb2.PredictRequest()
        model_spec(request.model_spec, model, version, label, signature)
        for alias, value in inputs.items():
            request.inputs[alias].CopyFrom(tensors.ndarray_to_tensor_proto(np.asarray(value)))
        request.output_filter.extend(output_filter)
        response = self._call(self.prediction.Predict, request, timeout, "Predict")
        outputs = {alias: _to_ndarray(proto) for alias, proto in response.outputs.items()}
        return PredictResult(outputs, response.model_spec.name, response.model_spec.version.value,
                             response.model_spec.signature_name)

    def images(self, z: np.ndarray, **target) -> PredictResult:
        """`serving_default`: z float32 [N, z_dim] → images float32 [N, H, W, C] in [-1, 1]."""
        return self.predict({"z": np.asarray(z, np.float32)}, signature="serving_default", **target)

    def generate(self, seeds: Sequence[int], **target) -> GeneratedFaces:
        """`generate`: seeds → PNG bytes and the z of each face (several requests for many seeds)."""
        seeds = [int(s) for s in seeds]
        png: list[bytes] = []
        zs, result = [], None
        for i in range(0, len(seeds), GENERATE_CHUNK):
            chunk = np.asarray(seeds[i:i + GENERATE_CHUNK], np.int64)
            result = self.predict({"seed": chunk}, signature="generate", **target)
            png.extend(result.outputs["png_bytes"].tolist())
            zs.append(result.outputs["z"])
        if result is None:
            raise ValueError("generate needs at least one seed")
        return GeneratedFaces(png, np.concatenate(zs), seeds, result.model, result.version)

    def interpolate(self, z0: np.ndarray, z1: np.ndarray, steps: int, **target) -> PredictResult:
        """`interpolate`: the slerp path z0 → z1 in `steps` frames (ends exact) and its images, in one request of
        `steps` rows (z0/z1 repeated, t = linspace(0, 1, steps))."""
        if steps < 2:
            raise ValueError(f"steps={steps} must be at least 2")
        z0 = np.asarray(z0, np.float32).reshape(1, -1)
        z1 = np.asarray(z1, np.float32).reshape(1, -1)
        return self.predict({"z0": np.repeat(z0, steps, 0), "z1": np.repeat(z1, steps, 0),
                             "t": np.linspace(0.0, 1.0, steps, dtype=np.float32)}, signature="interpolate", **target)

    def metadata(self, *, model: str, version: int | None = None, label: str | None = None,
                 timeout: float | None = None) -> ModelMetadata:
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        model_spec(request.model_spec, model, version, label)
        request.metadata_field.append("signature_def")
        response = self._call(self.prediction.GetModelMetadata, request, timeout, "GetModelMetadata")
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return ModelMetadata(response.model_spec.name, response.model_spec.version.value,
                             dict(signature_map.signature_def))

    # -- ModelService -------------------------------------------------------------------------------------------------
    def status(self, model: str, version: int | None = None, timeout: float | None = None) -> list[VersionState]:
        request = get_model_status_pb2.GetModelStatusRequest()
        model_spec(request.model_spec, model, version)
        response = self._call(self.models.GetModelStatus, request, timeout, "GetModelStatus")
        state_name = get_model_status_pb2.ModelVersionStatus.State.Name
        return [VersionState(s.version, state_name(s.state), _code_name(s.status.error_code), s.status.error_message)
                for s in response.model_version_status]

    def reload_config(self, config, timeout: float | None = None) -> None:
        """HandleReloadConfigRequest with a ModelServerConfig (the server keeps its old config when this fails)."""
        request = model_management_pb2.ReloadConfigRequest()
        request.config.CopyFrom(config)
        self._call(self.models.HandleReloadConfigRequest, request, timeout, "HandleReloadConfigRequest")

    def wait_for_version(self, model: str, version: int | None = None, timeout: float = 60.0,
                         poll_s: float = 0.2) -> VersionState:
        """Block until `version` (or any version) is AVAILABLE; raise ServingClientError when it ends in END with an
        error, or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last = "no status yet"
        while True:
            try:
                states = self.status(model, version)
                for s in states:
                    if s.state == "AVAILABLE":
                        return s
                    if version is not None and s.state == "END" and s.error_code != "OK":
                        raise ServingClientError(grpc.StatusCode.FAILED_PRECONDITION,
                                                 f"version {s.version} of model {model} failed to load: "
                                                 f"{s.error_code}: {s.error_message}", method="wait_for_version")
                last = ", ".join(f"version {s.version}: {s.state}" for s in states)
            except ServingClientError as e:
                if e.code != grpc.StatusCode.NOT_FOUND:
                    raise
                last = e.details
            if time.monotonic() > deadline:
                what = f"version {version}" if version is not None else "a version"
                raise ServingClientError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                         f"{what} of model {model} not AVAILABLE after {timeout:.0f} s ({last})",
                                         method="wait_for_version")
            time.sleep(poll_s)


def _code_name(code: int) -> str:
    enum = status_pb2.StatusProto.DESCRIPTOR.fields_by_name["error_code"].enum_type
    value = enum.values_by_number.get(code)
    return value.name if value is not None else str(code)


def _to_ndarray(proto) -> np.ndarray:
    """A response TensorProto → numpy (tensor_content or typed values; strings as bytes objects)."""
    return tensors.tensor_proto_to_ndarray(proto, max_elements=2**62)
