"""What makes the pages live: server-sent event streams (the tenant's cluster list, a cluster's
state and deployment log, a process log) and a web UI's reachability, all behind the session.
The pages work without them; disco.js reads them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from disco.cluster.service import event_view
from disco.cluster.ui.cluster_routes import service
from disco.cluster.ui.cluster_view import STATE_CLASS, summary, web_ui_url
from disco.cluster.ui.session import current, require
from disco.errors import DiscoError, NotFound

router = APIRouter(prefix="/ui/live", include_in_schema=False)
WAIT_S = 1.0  # the reconciler wakes streams at once; this bounds a quiet wait (and notices a closed tab)
LOG_POLL_S = 0.5
REACH_TIMEOUT_S = 2.0
MAX_OFFSET = 2 ** 63 - 1
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


def resumed_from(request: Request) -> int:
    """Where a reconnecting EventSource left off: the id of the last event it got (it sends it
    by itself), so that nothing is shown twice; 0 when it says nothing usable."""
    text = request.headers.get("last-event-id", "")
    return int(text) if text.isdigit() and len(text) < 19 else 0


@router.get("/clusters")
async def clusters(request: Request) -> Response:
    """`clusters` events: the whole list whenever it changes (a state, a count, a cluster more)."""
    session = require(request)
    svc = service(request)

    async def stream() -> AsyncIterator[str]:
        last: list[dict[str, Any]] | None = None
        while not await request.is_disconnected():
            if current(request) is None:  # signed out (or expired) meanwhile: the stream ends
                return
            rows = [summary(c) for c in svc.list(session.tenant)]
            if rows != last:
                last = rows
                yield sse("clusters", rows)
            await svc.lifecycle.wait_for_change(WAIT_S)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=STREAM_HEADERS)


@router.get("/clusters/{cluster_id}")
async def cluster(request: Request, cluster_id: str,
                  after: int = Query(default=0, ge=0, le=MAX_OFFSET)) -> Response:
    """`cluster-event` events (the deployment log, from `after`) and `state` events."""
    session = require(request)
    svc = service(request)
    svc.get(session.tenant, cluster_id)

    async def stream() -> AsyncIterator[str]:
        last_id, last_state = max(after, resumed_from(request)), None
        while not await request.is_disconnected():
            if current(request) is None:  # signed out (or expired) meanwhile: the stream ends
                return
            for event in svc.events(session.tenant, cluster_id, last_id):
                last_id = event.id
                yield sse("cluster-event", event_view(event), event.id)
            now = svc.get(session.tenant, cluster_id)
            state = {"state": now.state, "target": now.target, "workers": now.workers,
                     "status_reason": now.status_reason or "", "state_class": STATE_CLASS.get(now.state, "busy"),
                     "nodes": len([n for n in now.nodes if n.target == "running"])}
            if state != last_state:
                last_state = state
                yield sse("state", state)
            if now.state == "deleted":
                return
            await svc.lifecycle.wait_for_change(WAIT_S)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=STREAM_HEADERS)


@router.get("/clusters/{cluster_id}/logs/{node}/{process}")
async def process_log(request: Request, cluster_id: str, node: str, process: str,
                      offset: int = Query(default=0, ge=0, le=MAX_OFFSET)) -> Response:
    """`log` events: the process log's new text from `offset` (each with the offset after it)."""
    session = require(request)
    svc = service(request)
    found = svc.get(session.tenant, cluster_id)
    provider = svc.lifecycle.provider(found.provider)
    if (node, process) not in provider.log_names(found.id):
        raise NotFound(f"no log {node}/{process} in this cluster", code="no_such_log")

    async def stream() -> AsyncIterator[str]:
        position = max(offset, resumed_from(request))
        while not await request.is_disconnected():
            if current(request) is None:  # signed out (or expired) meanwhile: the stream ends
                return
            chunk = provider.read_log(found.id, node, process, position)
            if chunk:
                position += len(chunk)
                yield sse("log", {"text": chunk.decode(errors="replace"), "offset": position}, position)
                continue
            try:
                if svc.get(session.tenant, cluster_id).state == "deleted":
                    return
            except DiscoError:
                return
            await asyncio.sleep(LOG_POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=STREAM_HEADERS)


@router.get("/clusters/{cluster_id}/reach/{framework}/{key}")
async def reach(request: Request, cluster_id: str, framework: str, key: str) -> Response:
    """Whether a web UI of the cluster answers HTTP at all (a 401 is an answer: it is up, and
    asks for the cluster's token). Only the URLs the cluster's outputs name are tried, so this
    cannot be turned into a probe of other addresses."""
    session = require(request)
    url = web_ui_url(service(request).get(session.tenant, cluster_id), framework, key)
    if url is None:
        raise NotFound(f"no web UI {framework}/{key} in this cluster", code="no_such_web_ui")
    try:
        # verify=False: a cluster's UIs may use its own certificate; only "does it answer" is asked.
        async with httpx.AsyncClient(timeout=REACH_TIMEOUT_S, trust_env=False, verify=False) as client:
            answer = await client.get(url)
        up, status = True, answer.status_code
    except httpx.HTTPError:
        up, status = False, None
    return JSONResponse({"up": up, "status": status}, headers={"Cache-Control": "no-store"})
