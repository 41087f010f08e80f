"""The master's side of the master <-> node protocol (`/disco/node/*`, see the package docstring),
the web page, and redirects of `/disco/<host>/...` data URLs to the node that serves them."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route

from disco.mapreduce.master import node_desk, web
from disco.mapreduce.master.errors import RequestError
from disco.mapreduce.master.master import Master


def _master(request: Request) -> Master:
    return request.app.state.master


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise RequestError("the body must be JSON") from None
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    return body


async def _handle(request: Request, fn: Callable[[Master, dict[str, Any]], Any]) -> Response:
    """Run a node_desk operation (sync or async) on the request's JSON body."""
    try:
        reply = fn(_master(request), await _body(request))
        if inspect.isawaitable(reply):
            reply = await reply
        return JSONResponse({"ok": "ok"} if reply is None else reply)
    except RequestError as exc:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)
    except (TypeError, ValueError) as exc:
        return JSONResponse({"error": f"malformed request: {exc}"}, status_code=400)


def _operation(fn: Callable[[Master, dict[str, Any]], Any]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        return await _handle(request, fn)
    return endpoint


# POST /disco/node/<name>: the node_desk operation of that name.
OPERATIONS = {"register": node_desk.register, "poll": node_desk.poll,
              "results": node_desk.results, "events": node_desk.events,
              "inputs": node_desk.inputs}


async def jobpack(request: Request) -> Response:
    try:
        path = node_desk.jobpack(_master(request), request.query_params.get("name", ""))
    except RequestError as exc:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)
    return FileResponse(path, media_type="application/octet-stream")


async def node_data(request: Request) -> Response:
    """`/disco/<host>/...` asked of the master: send the client to that host's node."""
    path = request.path_params["path"]
    host = path.split("/", 1)[0]
    node = _master(request).registry.nodes.get(host)
    if node is None:
        return JSONResponse(f"no node {host!r}", status_code=404)
    return RedirectResponse(f"http://{host}:{node.port}/disco/{path}", status_code=302)


async def index(request: Request) -> Response:
    return HTMLResponse(web.index_page(_master(request)))


async def job_view(request: Request) -> Response:
    job = _master(request).jobs.get(request.query_params.get("name", ""))
    if job is None:
        return HTMLResponse("<p>No such job. <a href='/'>Back</a></p>", status_code=404)
    return HTMLResponse(web.job_page(job))


def _cross_site(request: Request) -> bool:
    """A form posted from another site's page: a browser would attach the Basic credentials
    it holds for this master, so the page's buttons answer only to the page itself."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return False  # not a browser's cross-site post (those always carry Origin)
    return urlsplit(origin).netloc != request.headers.get("host", "")


def _cross_site_refusal() -> Response:
    return PlainTextResponse("this form must be sent from the master's own page", status_code=403)


async def ui_kill(request: Request) -> Response:
    if _cross_site(request):
        return _cross_site_refusal()
    name = request.query_params.get("name", "")
    job = _master(request).jobs.get(name)
    if job is not None:
        job.kill("Job killed on request")
    return RedirectResponse(f"/ui/job?name={name}", status_code=303)


async def ui_purge(request: Request) -> Response:
    if _cross_site(request):
        return _cross_site_refusal()
    name = request.query_params.get("name", "")
    if name in _master(request).jobs:
        await _master(request).purge_job(name)
    return RedirectResponse("/", status_code=303)


def routes() -> list[Route]:
    return [
        *(Route(f"/disco/node/{name}", _operation(fn), methods=["POST"])
          for name, fn in OPERATIONS.items()),
        Route("/disco/node/jobpack", jobpack, methods=["GET"]),
        Route("/", index, methods=["GET"]),
        Route("/ui/job", job_view, methods=["GET"]),
        Route("/ui/kill", ui_kill, methods=["POST"]),
        Route("/ui/purge", ui_purge, methods=["POST"]),
        # Must come after every other /disco/ route.
        Route("/disco/{path:path}", node_data, methods=["GET", "HEAD"]),
    ]
