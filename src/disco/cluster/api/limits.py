"""Bounds every request before any route sees it (pure ASGI middleware).

One place for every route and every transfer encoding: the request target and the
headers are measured first (414, 431); then the body is read here, up to the limit
and no further, whether it came with a Content-Length or chunked (413). A route that
never reads its body (OCCI reads only headers) is therefore bounded all the same, and
none is called for a request that broke a limit.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# One header field, name and value: the OCCI attribute limit the docs have always stated.
MAX_HEADER_FIELD_BYTES = 65_536
# All header fields together.
MAX_HEADER_BLOCK_BYTES = 262_144
# Path and query string.
MAX_TARGET_BYTES = 65_536
# What the HTTP server may buffer of a request head before giving up on it with a bare 400:
# above the limits here, so that a head that breaks them reaches this middleware and gets a
# 431/414 that says why.
HEAD_BUFFER_BYTES = 4 * MAX_HEADER_BLOCK_BYTES
# Control characters other than the tab: RFC 9110 leaves a recipient the choice of refusing them.
_CONTROL = frozenset(range(0x20)) - {0x09} | {0x7F}


class RequestLimits:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = head_problem(scope)
        if problem is not None:
            await _reject(send, *problem)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _reject(send, *self._too_large())
            return
        body = await self._read_body(receive)
        if body is None:
            await _reject(send, *self._too_large())
            return
        if isinstance(body, dict):  # the client went away while sending
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive) -> bytes | Message | None:
        """The whole body; None once it passes the limit; the disconnect message if the client left."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> tuple[int, str, str, dict[str, Any]]:
        return (413, "body_too_large", f"request body larger than {self.max_body_bytes} bytes",
                {"max_bytes": self.max_body_bytes})


def head_problem(scope: Scope) -> tuple[int, str, str, dict[str, Any]] | None:
    """Why the request line or headers break a limit, or None when they do not."""
    target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string") or b"")
    if target > MAX_TARGET_BYTES:
        return (414, "uri_too_long", f"request target longer than {MAX_TARGET_BYTES} bytes",
                {"max_bytes": MAX_TARGET_BYTES})
    total = 0
    for name, value in scope.get("headers") or []:
        field = len(name) + len(value)
        total += field
        header = name.decode("latin-1")
        if field > MAX_HEADER_FIELD_BYTES:
            return (431, "headers_too_large",
                    f"header {header} is {field} bytes, more than {MAX_HEADER_FIELD_BYTES}",
                    {"header": header, "max_bytes": MAX_HEADER_FIELD_BYTES})
        if not _CONTROL.isdisjoint(value):
            return (400, "invalid_header", f"control character in the value of header {header}",
                    {"header": header})
    if total > MAX_HEADER_BLOCK_BYTES:
        return (431, "headers_too_large", f"headers are {total} bytes together, more than {MAX_HEADER_BLOCK_BYTES}",
                {"max_bytes": MAX_HEADER_BLOCK_BYTES})
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or []:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hands the app the body already read, then whatever the server says next (a disconnect)."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _reject(send: Send, status: int, code: str, message: str, details: dict[str, Any]) -> None:
    body = json.dumps({"error": {"code": code, "message": message, "details": details}}).encode()
    headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                          # The rest of the request is not read: the connection cannot carry another.
                          (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
