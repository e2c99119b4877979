"""What every router of the studio's HTTP API shares (FastAPI's "dependencies" module): the request body every POST
extends (its target: model, label, version), request parsing and validation with the studio's error format, the
dependencies (backend, config, limits, a query's target) and the answer envelope. The routers (app.py, specify.py,
project.py) import it; it imports none of them."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import numpy as np
from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from serving.studio.backend import ModelBackend, Resolved, StudioError, Target
from serving.studio.config import NAME_PATTERN, Limits, StudioConfig

MAX_VERSION = 2**63 - 1  # model versions are int64 on the wire
Version = Annotated[int, Field(ge=0, le=MAX_VERSION)]


# -- the body every POST extends: its target ---------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str | None = Field(None, max_length=128)
    label: str | None = Field(None, max_length=128)
    version: Version | None = None


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
