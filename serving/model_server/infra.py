"""Infra validation of a generator SavedModel: TFX InfraValidator's LOAD_AND_QUERY, without Docker.

`load_and_query(saved_model_dir)` serves that one SavedModel with the real model server of this package (in this
process, on free loopback ports, from a temporary model base path `<tmp>/<model>/1` that links to the directory),
then checks what a serving client would see:

1. GetModelStatus reports version 1 AVAILABLE (the SavedModel loads, with TF Serving's `serve` tag, and its
   `assets.extra/tf_serving_warmup_requests` replay if it has one);
2. GetModelMetadata lists the signatures, over gRPC and REST;
3. every signature answers one Predict over gRPC and one `:predict` over REST, with inputs built from its signature
   def (`z` ~ N(0, 1) [1, z_dim], `seed` [7], `z0`/`z1` [1, z_dim], `t` 0.5; zeros for anything else); the outputs
   must be non-empty, finite, and the same over both APIs.

It returns a report (a JSON-able dict) and raises InfraValidationError saying which check failed. The server is shut
down and the temporary directory removed in every case. The pipeline's infra-check step calls it and blesses the
model only when it returns.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np

from serving import tensors
from serving.errors import ServingError


class InfraValidationError(RuntimeError):
    """The SavedModel cannot be served: the message names the failed check."""


def _example_inputs(signature_def, rng: np.random.Generator) -> dict[str, np.ndarray]:
    inputs = {}
    for alias, info in sorted(signature_def.inputs.items()):
        dtype = tensors.NUMPY_DTYPES.get(info.dtype)
        if dtype is None:
            raise InfraValidationError(f"input {alias!r} has dtype {tensors.dtype_name(info.dtype)}, which this check "
                                       "cannot synthesise")
        shape = [1 if d.size < 0 else d.size for d in info.tensor_shape.dim]
        if alias in ("z", "z0", "z1") and info.dtype == tensors.DT_FLOAT:
            value = rng.standard_normal(shape).astype(np.float32)
        elif alias == "seed":
            value = np.full(shape, 7, dtype=dtype)
        elif alias == "t":
            value = np.full(shape, 0.5, dtype=dtype)
        elif info.dtype == tensors.DT_STRING:
            value = np.full(shape, b"", dtype=object)
        else:
            value = np.zeros(shape, dtype=dtype)
        inputs[alias] = value
    return inputs


def _check_outputs(api: str, signature: str, outputs: dict[str, np.ndarray]) -> dict:
    described = {}
    for alias, array in outputs.items():
        if array.size == 0:
            raise InfraValidationError(f"{api} {signature}: output {alias!r} is empty (shape {list(array.shape)})")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise InfraValidationError(f"{api} {signature}: output {alias!r} has NaN/Inf values")
        described[alias] = {"dtype": str(array.dtype) if array.dtype != object else "bytes",
                            "shape": list(array.shape)}
    return described


def _rest(url: str, body: dict | None, timeout: float) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        raise InfraValidationError(f"REST {url}: HTTP {e.code}: {e.read().decode(errors='replace')[:500]}") from None
    except (urllib.error.URLError, OSError) as e:
        raise InfraValidationError(f"REST {url}: {e}") from None


def _rest_outputs(payload: dict, aliases: list[str]) -> dict[str, np.ndarray]:
    outputs = payload["outputs"]
    if len(aliases) == 1:
        outputs = {aliases[0]: outputs}
    out = {}
    for alias, value in outputs.items():
        if alias.endswith("_bytes"):
            flat = np.asarray(value, dtype=object).reshape(-1)
            out[alias] = np.array([base64.b64decode(v["b64"]) for v in flat], dtype=object).reshape(
                np.shape(np.asarray(value, dtype=object)))
        else:
            out[alias] = np.asarray(value)
    return out


def load_and_query(saved_model_dir: str, timeout_s: float = 60.0, model_name: str = "dcgan") -> dict:
    """Serve `saved_model_dir` on free loopback ports, query every signature over gRPC and REST, stop the server.
    Returns the report; raises InfraValidationError on the first failed check."""
    from serving.client import ServingClient, ServingClientError
    from serving.model_server.server import EPHEMERAL_PORT, ModelServer, ServerOptions

    source = os.path.abspath(saved_model_dir)
    if not os.path.isfile(os.path.join(source, "saved_model.pb")) and not os.path.isfile(
            os.path.join(source, "saved_model.pbtxt")):
        raise InfraValidationError(f"{source} is not a SavedModel directory (no saved_model.pb)")
    started = time.monotonic()
    deadline = started + timeout_s

    def remaining(step: str) -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise InfraValidationError(f"timed out after {timeout_s:.0f} s ({step})")
        return left

    base = tempfile.mkdtemp(prefix="dcgan-infra-")
    server = None
    report: dict = {"saved_model_dir": source, "model_name": model_name, "version": 1, "signatures": {}}
    try:
        os.makedirs(os.path.join(base, model_name))
        os.symlink(source, os.path.join(base, model_name, "1"))
        options = ServerOptions(port=EPHEMERAL_PORT, rest_api_port=EPHEMERAL_PORT, host="127.0.0.1",
                                model_name=model_name, model_base_path=os.path.join(base, model_name),
                                file_system_poll_wait_seconds=0, rest_api_timeout_in_ms=int(timeout_s * 1000),
                                shutdown_grace_seconds=2)
        try:
            server = ModelServer(options).start()
        except ServingError as e:
            raise InfraValidationError(f"the model server could not load the SavedModel: {e.message}") from None
        report["load_seconds"] = round(time.monotonic() - started, 3)
        report["grpc_target"], report["rest_url"] = server.grpc_target, server.rest_url
        rng = np.random.default_rng(0)
        with ServingClient(server.grpc_target, timeout=remaining("connect"), retries=2) as client:
            try:
                states = client.status(model_name, timeout=remaining("status"))
                if not any(s.version == 1 and s.state == "AVAILABLE" for s in states):
                    raise InfraValidationError(f"version 1 is not AVAILABLE: {states}")
                metadata = client.metadata(model=model_name, timeout=remaining("metadata"))
            except ServingClientError as e:
                raise InfraValidationError(f"gRPC: {e}") from None
            rest_meta = _rest(f"{server.rest_url}/v1/models/{model_name}/metadata", None, remaining("REST metadata"))
            rest_signatures = set(rest_meta["metadata"]["signature_def"]["signature_def"])
            signatures = sorted(k for k in metadata.signature_defs if not k.startswith("__"))
            if not signatures:
                raise InfraValidationError("the SavedModel has no serving signatures")
            if not set(signatures) <= rest_signatures:
                raise InfraValidationError(f"REST metadata lists {sorted(rest_signatures)}, gRPC {signatures}")
            report["metadata_signatures"] = signatures
            for name in signatures:
                sig = metadata.signature_defs[name]
                inputs = _example_inputs(sig, rng)
                t = time.perf_counter()
                try:
                    result = client.predict(inputs, model=model_name, signature=name, timeout=remaining(name))
                except ServingClientError as e:
                    raise InfraValidationError(f"gRPC Predict {name}: {e}") from None
                grpc_ms = (time.perf_counter() - t) * 1000
                described = _check_outputs("gRPC", name, result.outputs)
                body = {"signature_name": name,
                        "inputs": {k: (v.tolist() if v.dtype != object else
                                       [{"b64": base64.b64encode(b).decode()} for b in v.reshape(-1)])
                                   for k, v in inputs.items()}}
                t = time.perf_counter()
                payload = _rest(f"{server.rest_url}/v1/models/{model_name}:predict", body, remaining(name))
                rest_ms = (time.perf_counter() - t) * 1000
                rest = _rest_outputs(payload, sorted(sig.outputs))
                _check_outputs("REST", name, rest)
                for alias, array in result.outputs.items():
                    other = rest.get(alias)
                    if other is None or other.shape != array.shape:
                        raise InfraValidationError(f"{name}: output {alias!r} has shape {list(array.shape)} over gRPC "
                                                   f"but {None if other is None else list(other.shape)} over REST")
                    same = (np.array_equal(array, other) if array.dtype == object
                            else np.allclose(array, other.astype(array.dtype), rtol=1e-5, atol=1e-5))
                    if not same:
                        raise InfraValidationError(f"{name}: output {alias!r} differs between gRPC and REST")
                report["signatures"][name] = {"inputs": {k: list(v.shape) for k, v in inputs.items()},
                                              "outputs": described, "grpc_ms": round(grpc_ms, 2),
                                              "rest_ms": round(rest_ms, 2)}
        report["ok"] = True
        report["total_seconds"] = round(time.monotonic() - started, 3)
        return report
    finally:
        if server is not None:
            server.stop(grace=1)
        shutil.rmtree(base, ignore_errors=True)
