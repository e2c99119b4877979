"""The studio's model calls: label → version resolution, cached faces, batched z → image requests, directions.

Every API request first resolves its target (model + label/version/latest) to a concrete version with
GetModelMetadata (reused for `resolve_ttl_s`), then asks that version explicitly, so all faces of one answer come
from one version, and caches are keyed by (model, version, ...) and can never mix versions. Concurrent z → image
requests for the same version within `batch_window_ms` are merged into one Predict (`ImageBatcher`).

All state lives on the event loop's thread; gRPC calls and PNG encoding run in worker threads.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from serving.client import DEFAULT_MAX_MESSAGE_BYTES, ServingClient, ServingClientError
from serving.rollout.labels import CANARY as CANARY_LABEL
from serving.studio.config import StudioConfig

log = logging.getLogger(__name__)


class StudioError(Exception):
    """An error answered as JSON: HTTP status, a stable code, a message for people, the offending field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def as_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return {"error": error}


@dataclass(frozen=True)
class Target:
    """What a request asks for: a model and a label, a version, or neither (the latest version)."""

    model: str
    label: str | None = None
    version: int | None = None

    def describe(self) -> str:
        if self.version is not None:
            return f"model {self.model!r} version {self.version}"
        if self.label:
            return f"model {self.model!r} label {self.label!r}"
        return f"model {self.model!r} (latest version)"


@dataclass(frozen=True)
class Resolved:
    """A target resolved to the version that answers it, and that version's shapes."""

    model: str
    version: int
    label: str | None
    z_dim: int
    image_shape: tuple[int, ...] | None

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "label": self.label, "z_dim": self.z_dim,
                "image_shape": list(self.image_shape) if self.image_shape else None}


def png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


class StudioClient(ServingClient):
    """serving.client.ServingClient on a channel that reconnects quickly: the gRPC default backs off up to 120 s
    after a failed connection, so a restarted model server would stay "down" for minutes. Here the channel retries
    the connection at most 1 s apart, and an UNAVAILABLE call is retried after 0.25, 0.5 and 1 s: a server that has
    just (re)started is found by the call that follows it (one retry 0.1 s later was not enough: the channel could
    still be waiting out its reconnect back-off, and a studio announced ready answered 503), and a dead server is
    reported in under 2 s."""

    def __init__(self, target: str, *, timeout: float, canary_share: float = 0.0):
        super().__init__(target, timeout=timeout, retries=3, backoff_s=0.25, canary_share=canary_share)
        self.channel.close()
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.channel = grpc.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", DEFAULT_MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", DEFAULT_MAX_MESSAGE_BYTES),
            ("grpc.initial_reconnect_backoff_ms", 250),
            ("grpc.min_reconnect_backoff_ms", 250),
            ("grpc.max_reconnect_backoff_ms", 1000)])
        self.prediction = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)


def model_server_error(e: ServingClientError, server: str, target: Target | None = None) -> StudioError:
    """A model-server failure as the studio's JSON error (503 when the server is down)."""
    code, details = e.code, e.details or str(e)
    what = target.describe() if target else "the model"
    if code == grpc.StatusCode.UNAVAILABLE:
        return StudioError(503, "model_server_unavailable",
                           f"The model server at {server} is not answering ({details}). Is `dcgan serve` (or TF "
                           "Serving) running there? The page retries by itself.")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return StudioError(504, "model_server_timeout", f"The model server at {server} did not answer in time "
                                                        f"({details}).")
    if code == grpc.StatusCode.NOT_FOUND:
        return StudioError(404, "model_not_found", f"The model server at {server} does not serve {what}: {details}")
    if code == grpc.StatusCode.INVALID_ARGUMENT and "label" in details.lower():
        return StudioError(400, "unknown_label", f"{what}: {details}", "label")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return StudioError(503, "model_server_busy", f"The model server at {server} is overloaded: {details}")
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
        return StudioError(400, "model_rejected_request", f"{what} rejected the request: {details}")
    return StudioError(502, "model_server_error", f"The model server at {server} failed: {code.name}: {details}")


class LRU:
    def __init__(self, size: int):
        self.size, self.data = size, OrderedDict()
        self.hits = self.misses = 0

    def get(self, key):
        value = self.data.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self.data.move_to_end(key)
        return value

    def put(self, key, value) -> None:
        if self.size <= 0:
            return
        self.data[key] = value
        self.data.move_to_end(key)
        while len(self.data) > self.size:
            self.data.popitem(last=False)

    def stats(self) -> dict[str, int]:
        return {"size": len(self.data), "capacity": self.size, "hits": self.hits, "misses": self.misses}


@dataclass
class _Pending:
    rows: list[np.ndarray]
    waiters: list[tuple[asyncio.Future, int, int]]
    count: int = 0


class ImageBatcher:
    """Merges concurrent z → image requests for one (model, version) into one call of `predict(model, version, z)`:
    the first request opens a batch, requests arriving within `window_s` join it, a full batch (max_rows) runs at
    once. Every caller gets its own rows back, or the call's exception."""

    def __init__(self, predict: Callable[[str, int, np.ndarray], Any], window_s: float, max_rows: int):
        self.predict, self.window_s, self.max_rows = predict, window_s, max_rows
        self._pending: dict[tuple[str, int], _Pending] = {}
        self._tasks: set[asyncio.Task] = set()
        self.calls = self.rows = self.requests = 0

    async def run(self, model: str, version: int, z: np.ndarray):
        loop = asyncio.get_running_loop()
        key = (model, version)
        batch = self._pending.get(key)
        if batch is not None and batch.count and batch.count + len(z) > self.max_rows:
            self._flush(key, batch)
            batch = None
        if batch is None:
            batch = self._pending[key] = _Pending([], [])
            if self.window_s > 0:
                loop.call_later(self.window_s, self._flush, key, batch)
            else:
                loop.call_soon(self._flush, key, batch)
        future = loop.create_future()
        batch.waiters.append((future, batch.count, len(z)))
        batch.rows.append(z)
        batch.count += len(z)
        self.requests += 1
        if batch.count >= self.max_rows:
            self._flush(key, batch)
        return await future

    def _flush(self, key: tuple[str, int], batch: _Pending) -> None:
        if self._pending.get(key) is not batch:
            return  # already flushed (full, or superseded)
        del self._pending[key]
        task = asyncio.ensure_future(self._execute(key, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, key: tuple[str, int], batch: _Pending) -> None:
        z = np.concatenate(batch.rows) if len(batch.rows) > 1 else batch.rows[0]
        self.calls += 1
        self.rows += len(z)
        try:
            result = await asyncio.to_thread(self.predict, key[0], key[1], z)
        except BaseException as e:  # noqa: BLE001 - every waiter gets the failure
            for future, _, _ in batch.waiters:
                if not future.done():
                    future.set_exception(e)
            return
        for future, start, n in batch.waiters:
            if not future.done():
                future.set_result(result[start:start + n])

    def stats(self) -> dict[str, int]:
        return {"predict_calls": self.calls, "rows": self.rows, "requests": self.requests}


@dataclass
class Face:
    z: np.ndarray           # float32 [z_dim]
    png: bytes
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"z": [float(v) for v in self.z], "png": png_data_url(self.png)}
        if self.seed is not None:
            out["seed"] = self.seed
        return out


def _encode_images(images: np.ndarray) -> list[bytes]:
    from dcgan import images as imlib

    pixels = imlib.to_uint8(images)
    if pixels.ndim == 4 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    return [imlib.encode_png(p, compress_level=1) for p in pixels]


class ModelBackend:
    """The model calls of the studio API (see the module docstring)."""

    def __init__(self, config: StudioConfig, client: ServingClient | None = None):
        self.config = config
        self.client = client or StudioClient(config.server, timeout=config.timeout_s,
                                             canary_share=config.canary_share)
        self.faces = LRU(config.cache_faces)            # (model, version, "z"|"seed", key) → Face
        self.walks = LRU(max(16, config.cache_faces // 16))  # interpolations: (model, version, ...) → [Face]
        self._resolved: dict[Target, tuple[float, Resolved]] = {}
        self._resolving: dict[Target, asyncio.Future] = {}
        self._directions: dict[str, tuple[tuple, dict]] = {}
        self.batcher = ImageBatcher(self._predict_images, config.batch_window_ms / 1000.0, config.batch_max_rows)
        self.resolve_calls = 0

    def close(self) -> None:
        self.client.close()

    # -- targets ------------------------------------------------------------------------------------------------------
    def target(self, model: str | None, label: str | None, version: int | None, label_given: bool) -> Target:
        if version is not None and label:
            raise StudioError(400, "invalid_request", "give a label or a version, not both", "version")
        if version is not None:
            return Target(model or self.config.model, None, version)
        return Target(model or self.config.model, (label or None) if label_given else self.config.label)

    async def _call(self, fn: Callable, *args, target: Target | None = None, **kwargs):
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ServingClientError as e:
            raise model_server_error(e, self.config.server, target) from None

    async def resolve(self, target: Target, fresh: bool = False) -> Resolved:
        """The version answering `target` now (GetModelMetadata), reused for resolve_ttl_s."""
        now = time.monotonic()
        cached = self._resolved.get(target)
        if cached and not fresh and now - cached[0] <= self.config.resolve_ttl_s:
            return cached[1]
        pending = self._resolving.get(target)
        if pending is not None:
            return await asyncio.shield(pending)
        future = asyncio.get_running_loop().create_future()
        self._resolving[target] = future
        try:
            self.resolve_calls += 1
            meta = await self._call(self.client.metadata, model=target.model, version=target.version,
                                    label=target.label, timeout=min(10.0, self.config.timeout_s), target=target)
            resolved = _resolved_from_metadata(meta, target)
            self._resolved[target] = (time.monotonic(), resolved)
            future.set_result(resolved)
            return resolved
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waits
            raise
        finally:
            self._resolving.pop(target, None)

    async def _with_version(self, target: Target, work: Callable[[Resolved], Any]):
        """Run `work(resolved)`; if that version was unloaded meanwhile (NOT_FOUND), resolve again once. A request
        that names no label or version goes to `canary` for the client's `canary_share` (ServingClient's split;
        while the model has no canary, to the default version), and is counted in the client's `split_counts`."""
        split = target.label is None and target.version is None and self.client.canary_share > 0.0
        if split and self.client.take_canary_turn():
            try:
                result = await self._with_version(Target(target.model, CANARY_LABEL), work)
            except StudioError as e:
                if e.code != "unknown_label":
                    raise
            else:
                self.client.split_counts["canary"] += 1
                return result
        resolved = await self.resolve(target)
        try:
            result = resolved, await work(resolved)
        except StudioError as e:
            if e.code != "model_not_found" or target.version is not None:
                raise
            resolved = await self.resolve(target, fresh=True)
            result = resolved, await work(resolved)
        if split:
            self.client.split_counts["default"] += 1
        return result

    def split(self) -> dict[str, Any]:
        """The traffic split of requests naming no label: the configured share and what was served (counts)."""
        return {"canary_share": self.client.canary_share, "counts": dict(self.client.split_counts)}

    # -- faces --------------------------------------------------------------------------------------------------------
    async def generate(self, target: Target, seeds: Sequence[int]) -> tuple[Resolved, list[Face]]:
        async def work(r: Resolved) -> list[Face]:
            found = {s: self.faces.get((r.model, r.version, "seed", s)) for s in seeds}
            missing = sorted({s for s, face in found.items() if face is None})
            if missing:
                answer = await self._call(self.client.generate, missing, model=r.model, version=r.version,
                                          target=target)
                for s, png, z in zip(missing, answer.png, answer.z):
                    face = Face(np.asarray(z, np.float32), bytes(png), s)
                    found[s] = face
                    self.faces.put((r.model, r.version, "seed", s), face)
                    # The same pixels as serving_default gives for this z: a pasted z of a grid face is a cache hit.
                    self.faces.put((r.model, r.version, "z", face.z.tobytes()), Face(face.z, face.png))
            return [found[s] for s in seeds]
        return await self._with_version(target, work)

    def _predict_images(self, model: str, version: int, z: np.ndarray) -> list[bytes]:
        result = self.client.images(z, model=model, version=version)
        return _encode_images(result.outputs["images"])

    async def images(self, target: Target, z: np.ndarray) -> tuple[Resolved, list[Face]]:
        z = np.asarray(z, np.float32)
        return await self._with_version(target, lambda r: self._render(r, z, target))

    async def _render(self, r: Resolved, z: np.ndarray, target: Target) -> list[Face]:
        """Faces of z rows on a resolved version: cached rows from the cache, the rest through the batcher."""
        keys = [(r.model, r.version, "z", row.tobytes()) for row in z]
        faces = [self.faces.get(k) for k in keys]
        missing = [i for i, f in enumerate(faces) if f is None]
        if missing:
            try:
                pngs = await self.batcher.run(r.model, r.version, z[missing])
            except ServingClientError as e:
                raise model_server_error(e, self.config.server, target) from None
            for i, png in zip(missing, pngs):
                faces[i] = Face(z[i].copy(), png)
                self.faces.put(keys[i], faces[i])
        return faces

    async def interpolate(self, target: Target, z0: np.ndarray, z1: np.ndarray, steps: int,
                          method: str) -> tuple[Resolved, list[Face]]:
        """`steps` frames from z0 to z1 (exact ends): slerp through the model's `interpolate` signature, lerp as
        straight-line z through `serving_default`."""
        from dcgan.latent import interpolate as latent_path

        z0, z1 = np.asarray(z0, np.float32), np.asarray(z1, np.float32)

        async def work(r: Resolved) -> list[Face]:
            key = (r.model, r.version, method, steps, z0.tobytes(), z1.tobytes())
            cached = self.walks.get(key)
            if cached is not None:
                return cached
            if method == "lerp":
                frames = await self._render(r, latent_path(z0, z1, steps, "lerp"), target)
            else:
                def call() -> tuple[np.ndarray, list[bytes]]:
                    result = self.client.interpolate(z0, z1, steps, model=r.model, version=r.version)
                    return result.outputs["z"], _encode_images(result.outputs["images"])
                path, pngs = await self._call(call, target=target)
                frames = [Face(np.asarray(zi, np.float32), png) for zi, png in zip(path, pngs)]
                for face in frames:
                    self.faces.put((r.model, r.version, "z", face.z.tobytes()), face)
            self.walks.put(key, frames)
            return frames
        return await self._with_version(target, work)

    async def status(self, target: Target) -> dict[str, Any]:
        versions = await self._call(self.client.status, target.model, timeout=min(10.0, self.config.timeout_s),
                                    target=target)
        resolved = await self.resolve(target, fresh=True)
        return {"versions": [v.__dict__ for v in versions], "serving": resolved.as_dict(), "split": self.split()}

    # -- directions ---------------------------------------------------------------------------------------------------
    def directions(self, resolved: Resolved) -> dict[str, Any]:
        """The attribute directions of the resolved version: from --directions FILE, or from
        <model_base_path>/<version>/assets.extra/directions.json. `available` false (with a note) otherwise."""
        from dcgan.directions import DIRECTIONS_FILE, DirectionsFileError, read_directions

        c = self.config
        if c.directions_file:
            path, source = c.directions_file, "file"
        elif c.model_base_path and resolved.model == c.model:
            path, source = os.path.join(c.model_base_path, str(resolved.version), DIRECTIONS_FILE), "model_base_path"
        else:
            why = (f"the studio knows the base path of model {c.model!r} only" if c.model_base_path else
                   "start the studio with --model-base-path (the model's folder of versions) or --directions FILE")
            return {"available": False, "source": None, "path": None,
                    "note": f"No attribute directions: {why}. Custom directions (picked faces) still work."}
        try:
            stat = os.stat(path)
        except OSError:
            return {"available": False, "source": source, "path": path,
                    "note": f"No attribute directions for version {resolved.version}: {path} does not exist "
                            "(compute them with `dcgan directions`)."}
        stamp = (stat.st_mtime_ns, stat.st_size, resolved.z_dim)
        cached = self._directions.get(path)
        if cached is None or cached[0] != stamp:
            try:
                doc = read_directions(path, resolved.z_dim)
            except DirectionsFileError as e:
                return {"available": False, "source": source, "path": path, "note": f"Directions unusable: {e}"}
            cached = (stamp, doc)
            self._directions[path] = cached
        return {"available": True, "source": source, "path": path, "note": None, "document": cached[1]}

    def stats(self) -> dict[str, Any]:
        return {"faces": self.faces.stats(), "walks": self.walks.stats(), "batching": self.batcher.stats(),
                "resolve_calls": self.resolve_calls, "split": self.split()}


def _dims(tensor_info) -> list[int]:
    return [int(d.size) for d in tensor_info.tensor_shape.dim]


def _resolved_from_metadata(meta, target: Target) -> Resolved:
    signatures = meta.signature_defs
    missing = [s for s in ("serving_default", "generate", "interpolate") if s not in signatures]
    if missing:
        raise StudioError(502, "not_a_generator",
                          f"{target.describe()} (version {meta.version}) has no {', '.join(missing)} signature: it "
                          "is not a dcgan generator export")
    z_dims = _dims(signatures["serving_default"].inputs["z"])
    if len(z_dims) != 2 or z_dims[1] <= 0:
        raise StudioError(502, "not_a_generator", f"{target.describe()}: serving_default's z has shape {z_dims}")
    image = _dims(signatures["serving_default"].outputs["images"])
    shape = tuple(image[1:]) if len(image) == 4 and all(d > 0 for d in image[1:]) else None
    return Resolved(meta.model, int(meta.version), target.label, z_dims[1], shape)
