"""The task farm's page (/ui/farm) and its live stream: the signed-in tenant's projects and
clients, the same numbers as GET /api/v1/farm/overview (disco.taskfarm.overview), so that the
page and the API can never disagree. Only the tenant's own projects and clients are read."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from disco.cluster.ui import pages
from disco.cluster.ui.live import STREAM_HEADERS, sse
from disco.cluster.ui.session import current, require
from disco.taskfarm.service import Farm

router = APIRouter(include_in_schema=False)
POLL_S = 1.0  # the farm has no change signal: its numbers are read again this often


def farm(request: Request) -> Farm:
    return request.app.state.farm


def _changed_part(numbers: dict[str, Any]) -> dict[str, Any]:
    """The overview without its own time stamp: an event only when a number changed."""
    return {k: v for k, v in numbers.items() if k != "generated_at"}


@router.get("/ui/farm")
async def farm_page(request: Request) -> Response:
    session = require(request)
    numbers = await asyncio.to_thread(farm(request).overview, session.tenant)
    return pages.render(request, "farm.html", session, farm=numbers)


@router.get("/ui/live/farm")
async def farm_stream(request: Request) -> Response:
    """`farm` events: the overview, whenever one of its numbers changes (the page refreshes its sections)."""
    session = require(request)
    the_farm = farm(request)

    async def stream() -> AsyncIterator[str]:
        last: dict[str, Any] | None = None
        while not await request.is_disconnected():
            if current(request) is None:  # signed out (or expired) meanwhile: the stream ends
                return
            numbers = await asyncio.to_thread(the_farm.overview, session.tenant)
            if _changed_part(numbers) != last:
                last = _changed_part(numbers)
                yield sse("farm", numbers)
            await asyncio.sleep(POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream", headers=STREAM_HEADERS)
