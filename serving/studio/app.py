"""The studio's HTTP API (FastAPI) and the static page.

Every POST takes a JSON object and may name its target: `model` (default: --model), `label` (default: --label;
"" = the latest version) or `version`. Every answer names the version that produced it. Faces are
`{"z": [z_dim numbers], "png": "data:image/png;base64,...", "seed": s (generated faces only)}`.

| endpoint                      | body / query                                           | answer                     |
|-------------------------------|--------------------------------------------------------|----------------------------|
| `GET  /api/config`            |                                                        | defaults, labels, limits   |
| `GET  /api/status`            | `?model=&label=&version=`                              | versions, the one answering|
| `POST /api/generate`          | `seed`, `n`                                            | `faces` (seed, z, png)     |
| `POST /api/images`            | `z`: one z or a list of them                           | `faces`                    |
| `POST /api/interpolate`       | `z0`, `z1`, `steps`, `method` (slerp, lerp)            | `frames` (t, z, png)       |
| `POST /api/arithmetic`        | `a`, `b`, `c` (lists of z), `variations`,`noise`,`seed`| `result`, `means`, ...     |
| `POST /api/move`              | `z`, `moves`: [{`direction` or `vector`, `amount`}]    | the moved face             |
| `GET  /api/directions`        | `?model=&label=&version=`                              | directions and their effect|
| `POST /api/directions/custom` | `with`, `without` (lists of z)                         | unit `vector`              |
| `POST /api/specify`           | `constraints`, `n`, `seed`, `budget` (specify.py)      | `faces`, `satisfaction`    |
| `POST /api/directions/conditional` | `attribute`, `fixed` (specify.py)                 | unit `vector`              |
| `GET  /api/stats`             |                                                        | cache/batching counters    |
| `POST /api/project`           | multipart `file` (+ `center_crop`): your own picture   | crop, z, reconstruction    |

Errors are `{"error": {"code", "message", "field"?}}`: 400 bad input, 404 unknown model/version or path,
413 body too large, 415 not JSON, 503 model server down or busy, 504 model server timeout, 502 other model-server
failures.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.http_body import BodyTooLarge, read_body
from serving.studio.backend import ModelBackend, Resolved, StudioError, Target
from serving.studio.config import NAME_PATTERN, Limits, StudioConfig

log = logging.getLogger(__name__)

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
ARITHMETIC_FORMULA = "mean(A) - mean(B) + mean(C)"
MAX_VERSION = 2**63 - 1  # model versions are int64 on the wire
Version = Annotated[int, Field(ge=0, le=MAX_VERSION)]


# -- request bodies ----------------------------------------------------------------------------------------------------
# One z (a list of z_dim numbers) or a list of them. Its length and values depend on the version that answers, so
# they are checked after the target is resolved (z_rows), with messages that name the version's z_dim.
ZInput = list[Any]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str | None = Field(None, max_length=128)
    label: str | None = Field(None, max_length=128)
    version: Version | None = None


class GenerateBody(_Body):
    seed: int = 0
    n: int = 16


class ImagesBody(_Body):
    z: ZInput


class InterpolateBody(_Body):
    z0: ZInput
    z1: ZInput
    steps: int = 8
    method: str = "slerp"


class ArithmeticBody(_Body):
    a: ZInput
    b: ZInput
    c: ZInput
    variations: int = 0
    noise: float = Field(0.25, allow_inf_nan=False)
    seed: int = 0


class Move(BaseModel):
    model_config = ConfigDict(extra="forbid")

    direction: str | None = Field(None, max_length=128)
    vector: ZInput | None = None
    amount: float = Field(allow_inf_nan=False)


class MoveBody(_Body):
    z: ZInput
    moves: list[Move]


class CustomDirectionBody(_Body):
    with_: ZInput = Field(alias="with")
    without: ZInput


# -- validation helpers ------------------------------------------------------------------------------------------------
def _bad(message: str, field: str | None = None, code: str = "invalid_request") -> StudioError:
    return StudioError(400, code, message, field)


def _fmt(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def check_range(field: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise _bad(f"{field} must be between {_fmt(low)} and {_fmt(high)} (got {_fmt(value)})", field)


def _number(value: Any, where: str, max_abs: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(f"{where} must be a number, got {json.dumps(value)[:40]}", where.split("[")[0])
    if not math.isfinite(value):
        raise _bad(f"{where} is {'NaN' if value != value else 'Infinity'}: z values must be finite numbers",
                   where.split("[")[0])
    if abs(value) > max_abs:
        raise _bad(f"{where} = {value:g} is outside ±{max_abs:g} (z is drawn from N(0, 1))", where.split("[")[0])
    return float(value)


def z_rows(value: list[Any], field: str, resolved: Resolved, max_rows: int, max_abs: float,
           allow_single: bool = True) -> np.ndarray:
    """A JSON z (one vector, or a list of vectors) → float32 [N, z_dim], with a clear message for every way it
    can be wrong."""
    dim = resolved.z_dim
    shape_text = f"{dim} numbers" + (f" (one z) or a list of such lists (at most {max_rows})" if allow_single else
                                     f" per vector, as a list of 1 to {max_rows} vectors")
    if not isinstance(value, list) or not value:
        raise _bad(f"{field} must be a list of {shape_text}", field)
    single = not isinstance(value[0], list)
    if single and not allow_single:
        raise _bad(f"{field} must be a list of z vectors (lists of {dim} numbers)", field)
    rows = [value] if single else value
    if len(rows) > max_rows:
        raise _bad(f"{field} has {len(rows)} vectors; at most {max_rows} per request", field)
    out = np.empty((len(rows), dim), np.float32)
    for i, row in enumerate(rows):
        where = field if single else f"{field}[{i}]"
        if not isinstance(row, list):
            raise _bad(f"{where} must be a list of {dim} numbers", field)
        if len(row) != dim:
            raise _bad(f"{where} has {len(row)} values; model {resolved.model!r} version {resolved.version} takes z "
                       f"of length {dim}", field)
        out[i] = [_number(v, f"{where}[{j}]", max_abs) for j, v in enumerate(row)]
    return out


def _pydantic_message(error: ValidationError | RequestValidationError,
                      drop_prefix: tuple[str, ...] = ()) -> tuple[str, str | None, list[dict]]:
    details = []
    for e in error.errors():
        loc = ".".join(str(p) for p in e["loc"] if p not in drop_prefix)
        if e["type"] == "extra_forbidden":
            msg = f"unknown field {loc!r}"
        elif e["type"] == "missing":
            msg = f"{loc} is required"
        else:
            msg = f"{loc}: {e['msg']}"
        details.append({"field": loc, "message": msg})
    first = details[0] if details else {"field": None, "message": "invalid request"}
    return first["message"], first["field"], details


B = TypeVar("B", bound=BaseModel)


async def parse_body(request: Request, model: type[B]) -> B:
    """The JSON object body of `request` as `model`: 415 unless JSON, 400 with the first offending field."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise StudioError(415, "unsupported_media_type",
                          "send the body as JSON with Content-Type: application/json "
                          f"(got {content_type or 'no content type'})")
    raw = await request.body()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _bad(f"the body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise _bad("the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        message, field, details = _pydantic_message(e)
        error = _bad(message, field)
        error.details = details
        raise error from None


def json_body(model: type[B]) -> Callable[[Request], Awaitable[B]]:
    """A dependency that parses the request body as `model` (parse_body's errors, not FastAPI's 422)."""

    async def dependency(request: Request) -> B:
        return await parse_body(request, model)

    return dependency


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI requestBody of a route whose body is parsed by json_body(model)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": model.model_json_schema(by_alias=True)}}}}


def _name(value: str | None, field: str) -> str | None:
    if value is None or value == "":
        return value
    if not re.match(NAME_PATTERN, value):
        raise _bad(f"{field} {value!r} is not a valid name (letters, digits, '_', '-', '.')", field)
    return value


# -- dependencies ------------------------------------------------------------------------------------------------------
def _backend(request: Request) -> ModelBackend:
    return request.app.state.backend


def _config(request: Request) -> StudioConfig:
    return request.app.state.config


def _limits(request: Request) -> Limits:
    return request.app.state.config.limits


Backend = Annotated[ModelBackend, Depends(_backend)]
Config = Annotated[StudioConfig, Depends(_config)]
RequestLimits = Annotated[Limits, Depends(_limits)]


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


def target_of_query(backend: Backend,
                    model: Annotated[str | None, Query(max_length=128)] = None,
                    label: Annotated[str | None, Query(max_length=128)] = None,
                    version: Annotated[Version | None, BeforeValidator(_empty_is_none), Query()] = None) -> Target:
    """`?model=&label=&version=` → a Target (an empty value means "not given"; `label=` asks for the latest)."""
    return backend.target(_name(model or None, "model"), _name(label, "label"), version, label is not None)


QueryTarget = Annotated[Target, Depends(target_of_query)]


def target_of(backend: ModelBackend, body: _Body) -> Target:
    label_given = "label" in body.model_fields_set
    return backend.target(_name(body.model, "model"), _name(body.label, "label"), body.version, label_given)


def envelope(resolved: Resolved, **fields: Any) -> dict[str, Any]:
    return {**resolved.as_dict(), **fields}


# -- the API -----------------------------------------------------------------------------------------------------------
router = APIRouter(prefix="/api")


@router.get("/config")
async def get_config(config: Config) -> dict[str, Any]:
    return {"server": config.server, "model": config.model, "label": config.label, "labels": list(config.labels),
            "limits": config.limits.as_dict(), "arithmetic": ARITHMETIC_FORMULA,
            "directions": {"model_base_path": config.model_base_path, "file": config.directions_file}}


@router.get("/status")
async def get_status(backend: Backend, config: Config, target: QueryTarget) -> dict[str, Any]:
    status = await backend.status(target)
    return {"server": config.server, "reachable": True, "model": target.model, "label": target.label, **status}


@router.get("/stats")
async def get_stats(backend: Backend) -> dict[str, Any]:
    return backend.stats()


@router.post("/generate", openapi_extra=body_schema(GenerateBody))
async def generate(body: Annotated[GenerateBody, Depends(json_body(GenerateBody))], backend: Backend,
                   limits: RequestLimits) -> dict[str, Any]:
    check_range("n", body.n, 1, limits.max_faces)
    check_range("seed", body.seed, 0, limits.max_seed)
    resolved, faces = await backend.generate(target_of(backend, body), list(range(body.seed, body.seed + body.n)))
    return envelope(resolved, faces=[f.as_dict() for f in faces])


@router.post("/images", openapi_extra=body_schema(ImagesBody))
async def images(body: Annotated[ImagesBody, Depends(json_body(ImagesBody))], backend: Backend,
                 limits: RequestLimits) -> dict[str, Any]:
    target = target_of(backend, body)
    resolved = await backend.resolve(target)
    z = z_rows(body.z, "z", resolved, limits.max_faces, limits.max_abs_z)
    resolved, faces = await backend.images(target, z)
    return envelope(resolved, faces=[f.as_dict() for f in faces])


@router.post("/interpolate", openapi_extra=body_schema(InterpolateBody))
async def interpolate(body: Annotated[InterpolateBody, Depends(json_body(InterpolateBody))], backend: Backend,
                      limits: RequestLimits) -> dict[str, Any]:
    check_range("steps", body.steps, 2, limits.max_steps)
    if body.method not in ("slerp", "lerp"):
        raise _bad(f"method must be 'slerp' or 'lerp', got {body.method!r}", "method")
    target = target_of(backend, body)
    resolved = await backend.resolve(target)
    z0 = z_rows(body.z0, "z0", resolved, 1, limits.max_abs_z)[0]
    z1 = z_rows(body.z1, "z1", resolved, 1, limits.max_abs_z)[0]
    resolved, frames = await backend.interpolate(target, z0, z1, body.steps, body.method)
    t = np.linspace(0.0, 1.0, body.steps)
    return envelope(resolved, method=body.method, steps=body.steps,
                    frames=[{"t": round(float(ti), 6), **f.as_dict()} for ti, f in zip(t, frames)])


@router.post("/arithmetic", openapi_extra=body_schema(ArithmeticBody))
async def arithmetic(body: Annotated[ArithmeticBody, Depends(json_body(ArithmeticBody))], backend: Backend,
                     limits: RequestLimits) -> dict[str, Any]:
    from dcgan.latent import arithmetic as latent_arithmetic

    check_range("variations", body.variations, 0, limits.max_variations)
    check_range("noise", body.noise, 0.0, 2.0)
    check_range("seed", body.seed, 0, limits.max_seed)
    target = target_of(backend, body)
    resolved = await backend.resolve(target)
    groups = {name: z_rows(getattr(body, name), name, resolved, limits.max_group, limits.max_abs_z)
              for name in ("a", "b", "c")}
    means = np.stack([groups[n].mean(0) for n in ("a", "b", "c")]).astype(np.float32)
    result = latent_arithmetic(groups["a"], groups["b"], groups["c"])
    # The paper's figure: uniform noise of ±0.25 added to the result vector gives the neighbouring samples.
    noise = np.random.default_rng(body.seed).uniform(-body.noise, body.noise,
                                                     (body.variations, resolved.z_dim)).astype(np.float32)
    rows = np.concatenate([means, result[None], result[None] + noise])
    resolved, faces = await backend.images(target, rows)
    return envelope(resolved, formula=ARITHMETIC_FORMULA, counts={n: len(g) for n, g in groups.items()},
                    means={n: faces[i].as_dict() for i, n in enumerate(("a", "b", "c"))},
                    result=faces[3].as_dict(), variations=[f.as_dict() for f in faces[4:]])


@router.post("/move", openapi_extra=body_schema(MoveBody))
async def move(body: Annotated[MoveBody, Depends(json_body(MoveBody))], backend: Backend,
               limits: RequestLimits) -> dict[str, Any]:
    if len(body.moves) > limits.max_moves:
        raise _bad(f"moves has {len(body.moves)} entries; at most {limits.max_moves}", "moves")
    target = target_of(backend, body)
    resolved = await backend.resolve(target)
    z = z_rows(body.z, "z", resolved, 1, limits.max_abs_z)[0].astype(np.float64)
    named: dict[str, Any] | None = None
    note = ""
    applied = []
    for i, m in enumerate(body.moves):
        check_range(f"moves[{i}].amount", m.amount, -limits.max_amount, limits.max_amount)
        if (m.direction is None) == (m.vector is None):
            raise _bad(f"moves[{i}] needs either 'direction' (a name from /api/directions) or 'vector'", "moves")
        if m.direction is not None:
            if named is None:
                found = backend.directions(resolved)
                named = found["document"]["directions"] if found["available"] else {}
                note = found["note"]
            if m.direction not in named:
                known = ", ".join(sorted(named)) or f"none ({note})"
                raise StudioError(400, "unknown_direction", f"moves[{i}].direction {m.direction!r} is not a "
                                  f"direction of version {resolved.version}; known: {known}", "moves")
            vector = np.asarray(named[m.direction]["vector"], np.float64)
        else:
            vector = z_rows(m.vector, f"moves[{i}].vector", resolved, 1, limits.max_abs_z)[0].astype(np.float64)
        z = z + m.amount * vector
        applied.append({"direction": m.direction or "custom", "amount": m.amount})
    resolved, faces = await backend.images(target, z.astype(np.float32)[None])
    return envelope(resolved, moves=applied, **faces[0].as_dict())


@router.get("/directions")
async def directions(backend: Backend, target: QueryTarget) -> dict[str, Any]:
    resolved = await backend.resolve(target)
    found = backend.directions(resolved)
    out = envelope(resolved, available=found["available"], source=found["source"], path=found["path"],
                   note=found["note"], directions=[], amount_range=[-3.0, 3.0])
    if found["available"]:
        from dcgan.edit_quality import badge

        doc = found["document"]
        top = max([abs(float(a)) for a in doc.get("amounts", [])] + [1.0])
        out.update(amount_range=[-top, top], method=doc.get("method"), created_at=doc.get("created_at"),
                   classifier=doc.get("classifier"), data=doc.get("data"), format=doc.get("format"),
                   quality=doc.get("quality"),
                   # each direction with its kind (mean_difference, boundary, conditional, sefa) and its attribute's
                   # facts (definition, classifier, positive_rate); reliable attributes can be fixed (conditional)
                   directions=[{"name": name, **{k: v for k, v in doc["attributes"].get(entry.get("attribute") or "",
                                                                                        {}).items()
                                                 if k not in ("vector", "normal")},
                                **{k: v for k, v in entry.items() if k != "vector"},
                                # the slider's quality badge: graded by the judge at its suggested step, churn
                                # relative to random directions moved as far (dcgan.edit_quality.badge)
                                "badge": badge(doc.get("quality"), entry.get("attribute"), entry["kind"])}
                               for name, entry in doc["directions"].items()],
                   attributes=[{"name": n, "reliable": e.get("reliable", True), "boundary": "normal" in e}
                               for n, e in doc["attributes"].items()])
    return out


@router.post("/directions/custom", openapi_extra=body_schema(CustomDirectionBody))
async def custom_direction(body: Annotated[CustomDirectionBody, Depends(json_body(CustomDirectionBody))],
                           backend: Backend, limits: RequestLimits) -> dict[str, Any]:
    from dcgan.latent import unit_direction

    resolved = await backend.resolve(target_of(backend, body))
    with_z = z_rows(body.with_, "with", resolved, limits.max_group, limits.max_abs_z)
    without_z = z_rows(body.without, "without", resolved, limits.max_group, limits.max_abs_z)
    vector, norm = unit_direction(with_z, without_z)
    if norm < 1e-6:
        raise _bad("the faces 'with' and 'without' have the same mean z: pick different faces", "with")
    return envelope(resolved, vector=[float(v) for v in vector], raw_norm=norm,
                    counts={"with": len(with_z), "without": len(without_z)})


# -- the page ----------------------------------------------------------------------------------------------------------
page = APIRouter()


@page.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(os.path.join(STATIC_DIR, "index.html"), headers={"Cache-Control": "no-cache"})


# -- errors ------------------------------------------------------------------------------------------------------------
async def studio_error(request: Request, e: StudioError) -> JSONResponse:
    body = e.as_dict()
    if getattr(e, "details", None):
        body["error"]["details"] = e.details
    if e.status >= 500:
        body["error"]["server"] = request.app.state.config.server
    return JSONResponse(body, e.status)


async def query_error(request: Request, e: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 for a bad query parameter, in the studio's error format: 400 naming the parameter."""
    message, field, details = _pydantic_message(e, drop_prefix=("query", "path", "header", "cookie"))
    error = _bad(message, field)
    error.details = details
    return await studio_error(request, error)


async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
    message = {404: f"no such page or endpoint: {request.url.path}",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(e.status_code, str(e.detail))
    return JSONResponse({"error": {"code": code, "message": message}}, e.status_code)


async def internal_error(request: Request, e: Exception) -> JSONResponse:
    log.exception("studio: %s %s failed", request.method, request.url.path)
    return JSONResponse({"error": {"code": "internal_error", "message": f"{type(e).__name__}: {e}"}}, 500)


# -- middleware --------------------------------------------------------------------------------------------------------
class SecurityHeaders:
    """ASGI middleware: the page loads nothing from other origins (CSP 'self'), no sniffing, no referrer."""

    HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
               (b"content-security-policy", CONTENT_SECURITY_POLICY.encode())]

    def __init__(self, app, **_: Any):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + self.HEADERS}
            await send(message)

        return await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """ASGI middleware: reads a request body up to `max_bytes` (413 JSON error beyond), then replays it."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        too_large = StudioError(413, "body_too_large", f"the request body is larger than {self.max_bytes} bytes")
        try:
            body = await read_body(scope, receive, self.max_bytes)
        except BodyTooLarge:
            return await JSONResponse(too_large.as_dict(), 413)(scope, receive, send)
        if body is None:
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


# -- the app -----------------------------------------------------------------------------------------------------------
def create_app(config: StudioConfig, backend: ModelBackend | None = None) -> FastAPI:
    """The studio ASGI app. `app.state.backend` is its ModelBackend (closed on shutdown)."""
    config = config.validate()
    backend = backend or ModelBackend(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        backend.close()

    # No Swagger UI: FastAPI's loads its script from a CDN, and the studio works offline. The schema is served.
    app = FastAPI(title="DCGAN studio", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json", lifespan=lifespan)
    app.state.backend = backend
    app.state.config = config
    app.add_middleware(BodyLimit, max_bytes=config.limits.max_body_bytes)
    app.add_middleware(SecurityHeaders)  # added last = outermost: the 413 answers carry the headers too
    app.add_exception_handler(StudioError, studio_error)
    app.add_exception_handler(RequestValidationError, query_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)
    app.include_router(router)
    from serving.studio import specify  # attribute endpoints: /api/specify, /api/directions/conditional
    app.include_router(specify.router)
    from serving.studio import project  # POST /api/project (its module imports this one: imported here)
    app.include_router(project.router)
    app.include_router(page)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
