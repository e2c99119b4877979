"""REST front end: TF Serving's HTTP API (api_rest.md, http_rest_api_handler.cc), as a plain ASGI app run by uvicorn.

    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            → GetModelStatusResponse as JSON
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   → GetModelMetadataResponse as JSON
    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict    → {"predictions": ...} / {"outputs": ...}
    POST ...:classify | ...:regress                              → 501 (UNIMPLEMENTED), as over gRPC

Paths are matched with TF Serving's own regular expressions on the raw (still percent-encoded) path, then the model
name and label are percent-decoded; errors are `{"error": "<message>"}` with TF Serving's status → HTTP mapping.

Besides the TF Serving API (not part of it): the Prometheus page at the monitoring path, `GET /healthz` (the process
is up) and `GET /readyz` (every configured model has an AVAILABLE version; 503 while loading or shutting down).
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.parse
from collections.abc import Callable

import anyio

from serving import tensors
from serving.errors import Code, ServingError, invalid_argument
from serving.http_body import BodyTooLarge, read_body
from serving.model_server import responses
from serving.model_server.core import ModelRequest, ServerCore
from serving.model_server.metrics import ServingMetrics

log = logging.getLogger(__name__)

# http_rest_api_util.cc
PATH_REGEX = re.compile(r"(?i)/v1/.*")
PREDICTION_REGEX = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)")
STATUS_REGEX = re.compile(
    r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?")
JSON_HEADERS = [(b"content-type", b"application/json")]
CORS_HEADERS = [(b"access-control-allow-origin", b"*"), (b"access-control-allow-methods", b"POST, GET"),
                (b"access-control-allow-headers", b"Content-Type")]


class RestApi:
    """The ASGI application of the REST port."""

    def __init__(self, core: ServerCore, metrics: ServingMetrics, *, timeout_s: float | None = 30.0,
                 max_request_bytes: int = 64 << 20, num_threads: int = 16, metrics_path: str | None = None,
                 cors: bool = False, is_serving: Callable[[], bool] = lambda: True):
        self.core, self.metrics = core, metrics
        self.timeout_s = timeout_s if timeout_s and timeout_s > 0 else None
        self.max_request_bytes = max_request_bytes
        self.limiter = anyio.CapacityLimiter(num_threads)
        self.metrics_path = metrics_path
        self.cors = cors
        self.is_serving = is_serving

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        method = scope["method"]
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.split(b"?", 1)[0].decode("latin-1")
        if self.metrics_path and path == self.metrics_path:
            return await self._send(send, 200, self.metrics.render(), [(b"content-type",
                                                                        self.metrics.content_type.encode())])
        if path == "/healthz":
            return await self._send_json(send, 200, {"status": "ok"})
        if path == "/readyz":
            ready = self.is_serving() and self.core.ready()
            return await self._send_json(send, 200 if ready else 503, {"ready": ready,
                                                                        "models": self.core.model_names()})
        if not PATH_REGEX.fullmatch(path):
            return await self._send_json(send, 404, {"error": f"Not found: {method} {path}"})
        try:
            body = await read_body(scope, receive, self.max_request_bytes)
        except BodyTooLarge as e:
            return await self._send_json(send, 413, {"error": f"{e} (--max_request_bytes)"})
        if body is None:  # the client went away
            return
        status, payload = await self._handle(method, path, body)
        await self._send(send, status, payload.encode("utf-8"), JSON_HEADERS)

    async def _send(self, send, status: int, body: bytes, headers) -> None:
        headers = list(headers) + (CORS_HEADERS if self.cors else [])
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _send_json(self, send, status: int, value) -> None:
        await self._send(send, status, json.dumps(value).encode(), JSON_HEADERS)

    # -- TF Serving's handler -----------------------------------------------------------------------------------------
    async def _handle(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        name = ""
        kind = "other"
        start = time.perf_counter()
        try:
            parsed = self._parse(method, path)
            if parsed is None:
                raise invalid_argument(f"Malformed request: {method} {path}")
            name, version, label, verb, subresource = parsed
            request = _model_request(name, version, label)
            if method == "POST":
                kind = verb.lower()
                if verb == "predict":
                    return 200, await self._predict(request, body)
                if verb in ("classify", "regress"):
                    raise ServingError(Code.UNIMPLEMENTED, f"{verb.capitalize()} is not supported by this model "
                                       "server: it serves DCGAN generators, whose signatures take tensors, not "
                                       "tf.Example inputs. Use :predict.")
                raise invalid_argument(f"Malformed request: {method} {path}")
            if subresource == "metadata":
                kind = "metadata"
                return 200, await self._run(self._metadata, request)
            kind = "status"
            return 200, await self._run(self._status, request)
        except ServingError as e:
            # A predict that ran records its own metrics (with the version); one that timed out is recorded here.
            if kind != "predict" or e.code == Code.DEADLINE_EXCEEDED:
                self._record(kind, name, "", e.code, start)
            return e.http_status, json.dumps({"error": e.message})

    def _record(self, method: str, model: str, version, code: Code, start: float) -> None:
        labels = (self.metrics.model_label(model), str(version), "rest", method)
        self.metrics.requests.labels(*labels, code.name).inc()
        if code != Code.OK:
            self.metrics.errors.labels(*labels, code.name).inc()
        self.metrics.latency.labels(*labels).observe(time.perf_counter() - start)

    @staticmethod
    def _parse(method: str, path: str):
        """ParseModelInfo: (name, version, label, verb, subresource) or None when the path does not match."""
        if method == "POST":
            m = PREDICTION_REGEX.fullmatch(path)
            if not m:
                return None
            name, version, label, verb = m.groups()
            subresource = ""
        elif method == "GET":
            m = STATUS_REGEX.fullmatch(path)
            if not m:
                return None
            name, version, label, subresource = m.groups()
            verb = ""
            if not name:
                raise invalid_argument("Missing model name in request.")
        else:
            return None
        name = urllib.parse.unquote(name or "")
        parsed_version = None
        if version:
            try:
                parsed_version = int(version)
                if parsed_version >= 2**63:
                    raise ValueError
            except ValueError:
                raise invalid_argument(f"Failed to convert version: {version} to numeric.") from None
        return name, parsed_version, urllib.parse.unquote(label) if label else None, verb or "", subresource or ""

    async def _run(self, fn, *args):
        if self.timeout_s is None:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)
        with anyio.move_on_after(self.timeout_s) as scope:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter, abandon_on_cancel=True)
        if scope.cancelled_caught:
            raise ServingError(Code.DEADLINE_EXCEEDED, f"Request took longer than --rest_api_timeout_in_ms "
                                                       f"({int(self.timeout_s * 1000)} ms)")

    async def _predict(self, request: ModelRequest, body: bytes) -> str:
        def work():
            with self.metrics.track("rest", "predict", request.name) as record:
                servable = self.core.resolve(request)
                record.version = servable.version
                signature, inputs, fmt = tensors.parse_predict_json(body, servable.signature_inputs,
                                                                    self.core.options.max_tensor_elements)
                spec = ModelRequest(request.name, request.version, request.label, signature)
                _, _, outputs = self.core.predict(spec, inputs, timeout=self.timeout_s, servable=servable)
                return responses.predict_json(outputs, fmt)

        return await self._run(work)

    def _status(self, request: ModelRequest) -> str:
        start = time.perf_counter()
        text = responses.status_json(self.core, request)
        self._record("status", request.name, "", Code.OK, start)
        return text

    def _metadata(self, request: ModelRequest) -> str:
        start = time.perf_counter()
        servable = self.core.resolve(request)
        text = responses.metadata_json(servable)
        self._record("metadata", request.name, servable.version, Code.OK, start)
        return text

def _model_request(name: str, version: int | None, label: str | None) -> ModelRequest:
    if version is not None and label is not None:
        raise invalid_argument(f"Both model version ({version}) and model version label ({label}) cannot be supplied.")
    return ModelRequest(name, version, label)
