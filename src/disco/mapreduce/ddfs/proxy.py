"""The `/ddfs/*` API (and the GC node lists under `/disco/ctrl/`) of a master that is not the
DDFS authority: each request passed on to the authority as it came, its answer passed back
(see `remote`). A client pointed at any master of a pool thus sees one DDFS."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from disco.comm_auth import DDFS_TOKEN_HEADER
from disco.mapreduce.ddfs.routes import MAX_BODY

if TYPE_CHECKING:
    from disco.mapreduce.ddfs.remote import RemoteDdfs

# What a DDFS request carries that the authority needs: the cluster token (Bearer) or a tag
# token (Basic), the tag token beside a Bearer, and the body's type.
PASSED_HEADERS = ("authorization", DDFS_TOKEN_HEADER.lower(), "content-type")
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE"]
# gc_start?wait=1 answers when a collection is over: allow it the time one takes.
TIMEOUT = httpx.Timeout(3600.0, connect=5.0)


def routes() -> list[Route]:
    async def forward(request: Request) -> Response:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY:
            return PlainTextResponse("Invalid request.", status_code=403)
        body = await request.body()
        if len(body) > MAX_BODY:
            return PlainTextResponse("Invalid request.", status_code=403)
        headers = {k: v for k, v in request.headers.items() if k.lower() in PASSED_HEADERS}
        remote: RemoteDdfs = request.app.state.master.ddfs
        assert remote.http is not None
        # The path as it came (still percent-encoded) and the query string whole (a name may
        # repeat in it).
        raw = request.scope.get("raw_path") or request.url.path.encode()
        url = f"{remote.authority}{raw.decode('latin-1')}"
        if request.url.query:
            url += f"?{request.url.query}"
        try:
            resp = await remote.http.request(request.method, url, headers=headers, content=body,
                                             timeout=TIMEOUT)
        except httpx.HTTPError as exc:
            return PlainTextResponse(f"Temporary server error. Try again. (the DDFS authority "
                                     f"{remote.authority} did not answer: {exc})", status_code=503)
        kept = {k: v for k, v in resp.headers.items() if k.lower() == "content-type"}
        return Response(resp.content, status_code=resp.status_code, headers=kept)

    return [
        Route("/ddfs/{path:path}", forward, methods=ALL_METHODS),
        Route("/disco/ctrl/get_gc_blacklist", forward, methods=["GET", "POST"]),
        Route("/disco/ctrl/gc_blacklist", forward, methods=["POST"]),
        Route("/disco/ctrl/gc_whitelist", forward, methods=["POST"]),
    ]
