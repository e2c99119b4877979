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
import logging
import os
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.http_body import BodyTooLarge, read_body
from serving.studio import project, specify
from serving.studio.backend import ModelBackend, StudioError
from serving.studio.config import StudioConfig
from serving.studio.dependencies import (
    Backend,
    Config,
    QueryTarget,
    RequestLimits,
    _bad,
    _Body,
    _pydantic_message,
    body_schema,
    check_range,
    envelope,
    json_body,
    target_of,
    z_rows,
)

log = logging.getLogger(__name__)

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
ARITHMETIC_FORMULA = "mean(A) - mean(B) + mean(C)"


# -- request bodies ----------------------------------------------------------------------------------------------------
# One z (a list of z_dim numbers) or a list of them. Its length and values depend on the version that answers, so
# they are checked after the target is resolved (z_rows), with messages that name the version's z_dim.
ZInput = list[Any]


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
    app.include_router(specify.router)  # attribute endpoints: /api/specify, /api/directions/conditional
    app.include_router(project.router)  # POST /api/project
    app.include_router(page)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
