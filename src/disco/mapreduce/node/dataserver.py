"""The node's HTTP server: its DISCO_DATA folder at `GET /disco/<path>` (what `disco://` and
`dir://` URLs naming this host resolve to), DDFS_DATA at `GET /ddfs/<path>`, and a small status
document at `/`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from disco.mapreduce.ddfs.node_app import file_route


def create_app(data: Path, status: Callable[[], dict[str, Any]],
               ddfs: Path | None = None) -> Starlette:
    root = data.resolve()

    async def serve_file(request: Request) -> Response:
        rel = request.path_params["path"]
        target = (root / rel).resolve()
        # Nothing outside DISCO_DATA, whatever `..` or symlinks the path holds.
        if root not in target.parents or not target.is_file():
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(target, media_type="application/octet-stream")

    async def index(request: Request) -> Response:
        return JSONResponse(status())

    return Starlette(routes=[
        Route("/disco/{path:path}", serve_file, methods=["GET", "HEAD"]),
        Route("/", index, methods=["GET"]),
        *([file_route(ddfs)] if ddfs is not None else []),
    ])
