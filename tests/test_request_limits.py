"""The request-limits middleware on its own, driven through the ASGI interface: what the HTTP
server in front of it refuses first (raw control characters in headers) is checked here, and
so is how much of a refused body it reads."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from disco.cluster.api.limits import MAX_HEADER_BLOCK_BYTES, MAX_HEADER_FIELD_BYTES, RequestLimits

LIMIT = 1000


class Endpoint:
    """The app behind the middleware: records what reached it and answers 200."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        self.bodies.append(message["body"])
        assert message["more_body"] is False
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def run(headers: list[tuple[bytes, bytes]], chunks: list[bytes], path: str = "/disco/") -> tuple[dict, int, Endpoint]:
    """One request through RequestLimits: (the answer's start and body, chunks read, the endpoint)."""
    endpoint = Endpoint()
    middleware = RequestLimits(endpoint, max_body_bytes=LIMIT)
    pending = list(chunks)
    read = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal read
        if not pending:
            return {"type": "http.disconnect"}
        read += 1
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers}
    asyncio.run(middleware(scope, receive, send))
    answer = {"status": sent[0]["status"], "headers": dict(sent[0]["headers"]), "body": sent[1]["body"]}
    return answer, read, endpoint


def error_of(answer: dict) -> dict:
    assert answer["headers"][b"content-type"] == b"application/json"
    return json.loads(answer["body"])["error"]


@pytest.mark.parametrize("value", [b"a\x00b", b"\x1b[2J", b"a\rb", b"a\nb", b"\x7f"])
def test_control_character_in_any_header_is_400(value: bytes) -> None:
    answer, read, endpoint = run([(b"user-agent", value)], [b""])
    assert answer["status"] == 400
    assert error_of(answer) == {"code": "invalid_header", "message": "control character in the value of header "
                                "user-agent", "details": {"header": "user-agent"}}
    assert read == 0 and endpoint.bodies == []


def test_tab_in_a_header_is_allowed() -> None:
    answer, _, endpoint = run([(b"x-occi-attribute", b'a="1",\tb="2"')], [b""])
    assert answer["status"] == 200 and endpoint.bodies == [b""]


def test_chunked_body_is_read_only_up_to_the_limit() -> None:
    chunks = [b"x" * 300] * 100   # 30 000 bytes in all, no Content-Length
    answer, read, endpoint = run([], chunks)
    assert answer["status"] == 413
    assert answer["headers"][b"connection"] == b"close"
    assert error_of(answer)["details"] == {"max_bytes": LIMIT}
    assert read == 4                # 1200 bytes: the first chunk past the limit, no further
    assert endpoint.bodies == []    # the route never ran


def test_body_at_the_limit_reaches_the_route_whole() -> None:
    answer, _, endpoint = run([], [b"a" * 400, b"b" * 400, b"c" * 200])
    assert answer["status"] == 200
    assert endpoint.bodies == [b"a" * 400 + b"b" * 400 + b"c" * 200]


def test_declared_length_over_the_limit_reads_nothing() -> None:
    answer, read, endpoint = run([(b"content-length", str(LIMIT + 1).encode())], [b"x" * (LIMIT + 1)])
    assert answer["status"] == 413 and read == 0 and endpoint.bodies == []


def test_header_limits() -> None:
    name = b"x-padding"
    fits = [(name, b"x" * (MAX_HEADER_FIELD_BYTES - len(name)))]
    assert run(fits, [b""])[0]["status"] == 200
    answer, _, endpoint = run([(name, b"x" * (MAX_HEADER_FIELD_BYTES - len(name) + 1))], [b""])
    assert answer["status"] == 431 and endpoint.bodies == []
    assert error_of(answer)["details"] == {"header": "x-padding", "max_bytes": MAX_HEADER_FIELD_BYTES}
    many = [(b"x-a", b"y" * 60_000)] * (MAX_HEADER_BLOCK_BYTES // 60_000 + 1)
    answer, _, _ = run(many, [b""])
    assert answer["status"] == 431
    assert error_of(answer)["details"] == {"max_bytes": MAX_HEADER_BLOCK_BYTES}


def test_target_limit() -> None:
    assert run([], [b""], path="/" + "x" * 65_535)[0]["status"] == 200
    answer, _, _ = run([], [b""], path="/" + "x" * 65_536)
    assert answer["status"] == 414 and error_of(answer)["code"] == "uri_too_long"
