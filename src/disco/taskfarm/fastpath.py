"""The protocol's two hot requests, POST …/work and POST …/results, answered as plain ASGI: the
body validated with the route's own pydantic model, the work handed to the group committer and
awaited on the event loop (no worker thread per request), the answer serialized once. FastAPI's
routing, dependency injection and thread hop cost as much CPU as the database work of a one-unit
request.

Only the plain case is taken: a JSON body the schema accepts, from a client whose token this
server has seen (Farm.cached_client). Everything else (another route, an unknown token, a body
the schema refuses) goes on to the app, with its body, so its answers and errors are the app's
own: the same routes answer, only faster."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from disco.errors import DiscoError
from disco.taskfarm import schemas
from disco.taskfarm.api import PREFIX, work_answer
from disco.taskfarm.service import Farm

WORK = PREFIX + "/work"
RESULTS = PREFIX + "/results"


class FastPath:
    def __init__(self, app: ASGIApp, farm: Farm) -> None:
        self.app = app
        self.farm = farm

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or scope["method"] != "POST" or path not in (WORK, RESULTS):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        client = None
        if auth.lower().startswith("bearer ") and headers.get(b"content-type", b"").startswith(b"application/json"):
            client = self.farm.cached_client(auth[7:].strip())
        if client is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        try:
            if path == WORK:
                request = schemas.WorkRequest.model_validate(json.loads(body))
            else:
                batch = schemas.ResultBatch.model_validate(json.loads(body))
        except (ValueError, ValidationError):  # the app answers it, with its 422 and details
            await self.app(scope, _replay(body), send)
            return
        try:
            if path == WORK:
                url = _input_url(scope, headers)
                answers = None
                if request.results:  # results and a new ask in one request (BOINC's scheduler RPC)
                    answers, leases = await asyncio.wrap_future(self.farm.exchange_future(
                        client, [item.model_dump() for item in request.results], request.seconds, request.slots, url))
                else:
                    leases = await asyncio.wrap_future(
                        self.farm.work_future(client, request.seconds, request.slots, url))
                body, extra = work_answer(leases, answers, self.farm.config.retry_after_s)
                await _answer(send, 200, body, [(k.lower().encode(), v.encode()) for k, v in extra.items()])
            else:
                answers = await asyncio.wrap_future(self.farm.report_future(
                    client, [item.model_dump() for item in batch.results]))
                await _answer(send, 200, {"results": answers})
        except DiscoError as exc:  # e.g. 503 unavailable: the app's envelope and headers
            extra = [(k.lower().encode(), v.encode()) for k, v in (getattr(exc, "headers", None) or {}).items()]
            await _answer(send, exc.status, exc.to_dict(), extra)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _input_url(scope: Scope, headers: dict[bytes, bytes]) -> str:
    # What the routes build from request.base_url: the Host the client used, then the root path.
    host = headers.get(b"host", b"").decode("latin-1")
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}{PREFIX}/units/{{unit_id}}/input"


async def _answer(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": data})
