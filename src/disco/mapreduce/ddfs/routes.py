"""DDFS's HTTP API on the master, as Disco clients call it.

`GET /ddfs/new_blob/<name>?replicas=K&exclude=h1,h2` -> `["http://node:putport/ddfs/vol0/
    blob/<hh>/<name>$<ts>", ...]` (403 when there are not K nodes to write to).
`GET /ddfs/tags[/<prefix>]` -> `["tag", ...]`.
`GET /ddfs/tag/<tag>[/<attr>]` -> the tag without its tokens, or an attribute (`ddfs:urls`,
    `ddfs:read-token`, `ddfs:write-token` or a user attribute).
`POST /ddfs/tag/<tag>[?update=1][&delayed=1]` body `[[url, ...], ...]` -> the URLs of the
    tag's copies. Adds the urls (skipping, with update, blobs and tags already there).
`PUT /ddfs/tag/<tag>[/<attr>]` body: the JSON value -> the URLs of the tag's copies.
`DELETE /ddfs/tag/<tag>[/<attr>]` -> `"deleted"`.
`/ddfs/ctrl/gc_stats` (the last run's statistics, or `""`), `gc_status` (`""` unless a run
    is going on, then a sentence naming its phase), `gc_start`
    (`?wait=1` answers when the run is over, with its statistics), `safe_gc_blacklist`.
`POST /disco/ctrl/gc_blacklist` and `gc_whitelist` (a node name), `GET
    /disco/ctrl/get_gc_blacklist`.

Tag tokens come as HTTP Basic authentication with the user name `token`, as Disco sends
them, or in an `X-DDFS-Token` header: a client that proves the cluster token
(`Authorization: Bearer`, see `disco.mapreduce.auth`) sends its tag token there.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from disco.comm_auth import DDFS_TOKEN_HEADER
from disco.mapreduce.ddfs.errors import DdfsError
from disco.mapreduce.ddfs.service import Ddfs
from disco.mapreduce.ddfs.tagdata import ALL, MAX_ATTRIBUTE_NAME, URLS, Attrib, split_tag_path

MAX_BODY = 256 << 20  # a tag's urls, or an attribute value

Handler = Callable[[Request], Awaitable[Response]]


def _ddfs(request: Request) -> Ddfs:
    return request.app.state.master.ddfs


def request_token(request: Request) -> str | None:
    """The tag token of `Authorization: Basic base64("token:<token>")`, else of the
    `X-DDFS-Token` header; None without one."""
    header = request.headers.get("authorization", "")
    scheme, _space, value = header.partition(" ")
    if scheme.lower() != "basic":
        return request.headers.get(DDFS_TOKEN_HEADER)
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, token = decoded.partition(":")
    return token if sep and user == "token" else None


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    return value is not None and value.strip().lower() not in ("", "0", "false", "no")


async def _json_body(request: Request) -> Any:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY:
        raise DdfsError(403, "Invalid request.")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise DdfsError(403, "Invalid request.")
    try:
        return json.loads(body)
    except ValueError:
        raise DdfsError(403, "Invalid request body.") from None


def _guarded(fn: Handler) -> Handler:
    async def handler(request: Request) -> Response:
        try:
            return await fn(request)
        except DdfsError as exc:
            return PlainTextResponse(exc.message, status_code=exc.status)
    return handler


def _tag_path(request: Request, default: Attrib) -> tuple[str, Attrib]:
    """The tag and the attribute a `/ddfs/tag/<tag>[/<attr>]` request is about."""
    name, attrib = split_tag_path(request.path_params["path"], default)
    if attrib.kind == "unknown":
        raise DdfsError(404, "Tag attribute not found.")
    if attrib.kind == "user" and len(attrib.name.encode()) > MAX_ATTRIBUTE_NAME:
        raise DdfsError(403, "Attribute name too big.")
    return name, attrib


@_guarded
async def new_blob(request: Request) -> Response:
    replicas = request.query_params.get("replicas")
    exclude = [h for h in request.query_params.get("exclude", "").split(",") if h]
    try:
        k = int(replicas) if replicas else None
    except ValueError:
        raise DdfsError(403, "Invalid number of replicas.") from None
    return JSONResponse(_ddfs(request).new_blob(request.path_params["name"], k, exclude))


@_guarded
async def list_tags(request: Request) -> Response:
    prefix = request.path_params.get("prefix", "").strip("/")
    return JSONResponse(await _ddfs(request).tags.names(prefix))


@_guarded
async def get_tag(request: Request) -> Response:
    name, attrib = _tag_path(request, ALL)
    value = await _ddfs(request).tags.get(name, attrib, request_token(request))
    return JSONResponse(value)


@_guarded
async def post_tag(request: Request) -> Response:
    urls = await _json_body(request)
    locations = await _ddfs(request).tags.update(
        request.path_params["path"], urls, request_token(request),
        nodup=_flag(request, "update"), delayed=_flag(request, "delayed"))
    return JSONResponse(locations)


@_guarded
async def put_tag(request: Request) -> Response:
    name, attrib = _tag_path(request, URLS)
    value = await _json_body(request)
    locations = await _ddfs(request).tags.put(name, attrib, value, request_token(request))
    return JSONResponse(locations)


@_guarded
async def delete_tag(request: Request) -> Response:
    name, attrib = _tag_path(request, ALL)
    tags = _ddfs(request).tags
    if attrib == ALL:
        await tags.delete(name, request_token(request))
    else:
        await tags.delete_attrib(name, attrib, request_token(request))
    return JSONResponse("deleted")


async def gc_stats(request: Request) -> Response:
    return JSONResponse(_ddfs(request).gc.last or "")


async def gc_status(request: Request) -> Response:
    gc = _ddfs(request).gc
    # Disco's answer, which its scripts poll until it is "": empty while no GC runs.
    if not gc.running:
        return JSONResponse("")
    return JSONResponse(f"GC is running (phase: {gc.phase or 'starting'})")


async def gc_start(request: Request) -> Response:
    gc = _ddfs(request).gc
    started = gc.start()
    if _flag(request, "wait"):
        await gc.wait()
        return JSONResponse(gc.last)
    return JSONResponse("GC started" if started else "GC is already running")


async def safe_gc_blacklist(request: Request) -> Response:
    return JSONResponse(sorted(_ddfs(request).gc.safe_blacklist))


async def get_gc_blacklist(request: Request) -> Response:
    return JSONResponse(sorted(_ddfs(request).links.gc_blacklist))


def _gc_list(on: bool) -> Handler:
    @_guarded
    async def handler(request: Request) -> Response:
        host = await _json_body(request)
        _ddfs(request).gc_blacklist(host, on)
        return JSONResponse("")
    return handler


def routes() -> list[Route]:
    both = ["GET", "POST"]
    return [
        Route("/ddfs/new_blob/{name}", new_blob, methods=["GET"]),
        Route("/ddfs/tags", list_tags, methods=["GET"]),
        Route("/ddfs/tags/{prefix:path}", list_tags, methods=["GET"]),
        Route("/ddfs/tag/{path:path}", get_tag, methods=["GET"]),
        Route("/ddfs/tag/{path:path}", post_tag, methods=["POST"]),
        Route("/ddfs/tag/{path:path}", put_tag, methods=["PUT"]),
        Route("/ddfs/tag/{path:path}", delete_tag, methods=["DELETE"]),
        Route("/ddfs/ctrl/gc_stats", gc_stats, methods=both),
        Route("/ddfs/ctrl/gc_status", gc_status, methods=both),
        Route("/ddfs/ctrl/gc_start", gc_start, methods=both),
        Route("/ddfs/ctrl/safe_gc_blacklist", safe_gc_blacklist, methods=both),
        Route("/disco/ctrl/get_gc_blacklist", get_gc_blacklist, methods=both),
        Route("/disco/ctrl/gc_blacklist", _gc_list(True), methods=["POST"]),
        Route("/disco/ctrl/gc_whitelist", _gc_list(False), methods=["POST"]),
    ]
