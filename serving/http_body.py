"""Reading an HTTP request body under a size limit, for every ASGI app of the serving side (the REST API of the model
server and the studio): the declared Content-Length is checked first, then the bytes as they arrive, so an oversized
body is refused before it is held in memory."""

from __future__ import annotations


class BodyTooLarge(Exception):
    """The request body is larger than the limit (HTTP 413)."""

    def __init__(self, limit: int, declared: int | None = None):
        self.limit, self.declared = limit, declared
        size = f"of {declared} bytes " if declared is not None else ""
        super().__init__(f"Request body {size}exceeds this server's limit of {limit} bytes")


async def read_body(scope, receive, max_bytes: int) -> bytes | None:
    """The whole body of an ASGI `http` request, or None when the client disconnected first. Raises BodyTooLarge
    when the Content-Length header or the bytes received exceed `max_bytes`."""
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit() and int(value) > max_bytes:
            raise BodyTooLarge(max_bytes, int(value))
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(max_bytes)
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)
