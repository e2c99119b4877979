"""Errors of the model server: one canonical status code (the gRPC/TensorFlow codes) per failure, mapped to HTTP
statuses exactly as TF Serving's REST server maps them (`http_server.cc`, ToHTTPStatusCode). No TF/grpc import."""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """Canonical status codes (google.rpc.Code = grpc.StatusCode = tensorflow error codes)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


# TF Serving's ToHTTPStatusCode.
HTTP_STATUS: dict[Code, int] = {
    Code.OK: 200,
    Code.CANCELLED: 499,
    Code.UNKNOWN: 500,
    Code.INVALID_ARGUMENT: 400,
    Code.DEADLINE_EXCEEDED: 504,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.ABORTED: 409,
    Code.OUT_OF_RANGE: 400,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
    Code.UNAVAILABLE: 503,
    Code.DATA_LOSS: 500,
    Code.UNAUTHENTICATED: 401,
}


class ServingError(Exception):
    """A request or configuration failure with a canonical code and the message the client sees."""

    def __init__(self, code: Code, message: str):
        super().__init__(message)
        self.code = Code(code)
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def grpc_code(self):
        import grpc

        return _GRPC_CODES(grpc)[self.code]

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def _GRPC_CODES(grpc) -> dict[Code, object]:  # noqa: N802 - a lookup table built lazily
    return {Code(c.value[0]): c for c in grpc.StatusCode}


def invalid_argument(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    return ServingError(Code.NOT_FOUND, message)


def failed_precondition(message: str) -> ServingError:
    return ServingError(Code.FAILED_PRECONDITION, message)


def unavailable(message: str) -> ServingError:
    return ServingError(Code.UNAVAILABLE, message)


def from_tf_error(error: BaseException) -> ServingError:
    """A TensorFlow OpError (its `error_code` is the canonical code) as a ServingError with a readable message:
    the graph-node trace and `[Op:...]` suffix TF appends are dropped."""
    code = getattr(error, "error_code", Code.UNKNOWN)
    message = getattr(error, "message", None) or str(error)
    return ServingError(Code(code), clean_tf_message(message))


def clean_tf_message(message: str) -> str:
    lines = []
    for line in message.splitlines():
        stripped = line.strip()
        if (stripped.startswith(("[[", "Graph execution error", "Detected at node", "<stack traces unavailable>",
                                 'File "'))
                or (line.startswith("  ") and not stripped.startswith("["))):
            continue
        lines.append(line)
    text = "\n".join(lines).strip()
    op = text.rfind(" [Op:")
    if op > 0 and text.endswith("]"):
        text = text[:op].rstrip()
    return text or message.strip()
