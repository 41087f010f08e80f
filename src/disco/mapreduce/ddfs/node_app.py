"""A node's DDFS HTTP services.

On DDFS_PUT_PORT (`create_put_app`):

`PUT /ddfs/<vol>/blob/<hh>/<name>$<ts>` (the URLs `new_blob` hands out)
    -> 201 `"disco://<host>/ddfs/<vol>/blob/<hh>/<name>$<ts>"`; 409 if the blob exists.

and the master's DDFS requests (see `disco.mapreduce.ddfs`):

`PUT /ddfs/node/tag/<tag id>` body: the version's JSON -> 201 `"disco://.../tag/..."`.
`GET /ddfs/node/tag/<name>` -> `{"id", "vol", "data"}` of the newest version held, or 404.
`GET /ddfs/node/tagnames` -> `["name", ...]`: tags with a version here.
`GET /ddfs/node/inventory` -> `{"blobs": [[name, vol, size, age]...], "tags": [[id, vol,
    size]...], "partials": [[path, age]...]}`.
`POST /ddfs/node/delete` `{"blobs": [[name, vol]...], "tags": [[id, vol]...], "partials":
    [path...]}` -> `{"deleted": n}`.
`POST /ddfs/node/fetch` `{"source": "http://...", "objname", "vol"}` -> `{"url"}`: copy a
    blob from another node (re-replication); an existing copy is kept and its URL given.

On DISCO_PORT the node's data server adds `file_route`: `GET /ddfs/<path>`, the files under
DDFS_DATA that `disco://<host>/ddfs/...` URLs name (unfinished uploads excepted).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from disco.mapreduce.auth import bearer_headers
from disco.mapreduce.ddfs.names import PARTIAL_PREFIX, hexhash, parse_url, valid_objname
from disco.mapreduce.ddfs.store import DdfsStore, StoreError


def file_route(root: Path) -> Route:
    base = root.resolve()

    async def serve(request: Request) -> Response:
        target = (base / request.path_params["path"]).resolve()
        # Nothing outside DDFS_DATA, whatever `..` or symlinks the path holds.
        if base not in target.parents or target.name.startswith(PARTIAL_PREFIX) \
                or not target.is_file():
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(target, media_type="application/octet-stream")

    return Route("/ddfs/{path:path}", serve, methods=["GET", "HEAD"])


def create_put_app(store: DdfsStore, token: str | None = None) -> Starlette:
    """`token`: the cluster token, for reading a blob from another node in `fetch`."""
    def refused(exc: StoreError) -> Response:
        return PlainTextResponse(str(exc), status_code=exc.status)

    async def put_blob(request: Request) -> Response:
        p = request.path_params
        try:
            store.check(p["vol"], "blob", p["hh"], p["objname"])
            url = await store.receive("blob", p["objname"], request.stream(), p["vol"])
        except StoreError as exc:
            return refused(exc)
        except ClientDisconnect:
            return PlainTextResponse("upload interrupted", status_code=400)
        return JSONResponse(url, status_code=201)

    async def put_tag(request: Request) -> Response:
        tagid = request.path_params["tagid"]
        body = await request.body()
        try:
            if not valid_objname(tagid):
                raise StoreError(f"invalid tag id {tagid!r}", 403)
            json.loads(body)  # never store a version nobody could read back
            url = await store.receive_bytes("tag", tagid, body)
        except StoreError as exc:
            return refused(exc)
        except ValueError:
            return PlainTextResponse("a tag version is JSON", status_code=400)
        return JSONResponse(url, status_code=201)

    async def get_tag(request: Request) -> Response:
        found = await store.latest_tag(request.path_params["name"])
        if found is None:
            return PlainTextResponse("no such tag here", status_code=404)
        version, data = found
        try:
            content: Any = json.loads(data)
        except ValueError:
            content = data.decode("utf-8", "replace")  # the master decides what to do
        return JSONResponse({"id": version.tagid, "vol": version.vol, "data": content})

    async def tagnames(request: Request) -> Response:
        return JSONResponse(await store.tag_names())

    async def inventory(request: Request) -> Response:
        return JSONResponse(await store.inventory())

    async def delete(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            deleted = await store.delete([list(e) for e in body.get("blobs", [])],
                                         [list(e) for e in body.get("tags", [])],
                                         [str(p) for p in body.get("partials", [])])
        except (ValueError, TypeError, AttributeError) as exc:
            return PlainTextResponse(f"malformed request: {exc}", status_code=400)
        return JSONResponse({"deleted": deleted})

    async def fetch(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            source, objname, vol = str(body["source"]), str(body["objname"]), str(body["vol"])
        except (ValueError, KeyError, TypeError) as exc:
            return PlainTextResponse(f"malformed request: {exc}", status_code=400)
        parsed = parse_url(source)
        if parsed is None or parsed.objname != objname or parsed.kind != "blob":
            return PlainTextResponse("the source must be a URL of the blob", status_code=400)
        try:
            store.check(vol, "blob", hexhash(objname), objname)
            if store.path("blob", objname, vol).exists():
                return JSONResponse({"url": f"disco://{store.host}/ddfs/{vol}/blob/"
                                            f"{hexhash(objname)}/{objname}"})
            # Re-replication is rare: a client of its own per copy keeps the app stateless.
            # The source is another node of the cluster, named by the master.
            async with httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=5.0),
                                         trust_env=False, headers=bearer_headers(token)) as http, \
                    http.stream("GET", source) as resp:
                if resp.status_code != 200:
                    return PlainTextResponse(f"{source} answered {resp.status_code}",
                                             status_code=502)

                async def body_chunks() -> AsyncIterator[bytes]:
                    async for chunk in resp.aiter_raw(1 << 16):
                        yield chunk

                url = await store.receive("blob", objname, body_chunks(), vol)
        except StoreError as exc:
            if exc.status == 409:  # another copy finished first: as good as ours
                return JSONResponse({"url": f"disco://{store.host}/ddfs/{vol}/blob/"
                                            f"{hexhash(objname)}/{objname}"})
            return refused(exc)
        except httpx.HTTPError as exc:
            return PlainTextResponse(f"cannot read {source}: {exc}", status_code=502)
        return JSONResponse({"url": url})

    return Starlette(routes=[
        Route("/ddfs/node/tag/{tagid}", put_tag, methods=["PUT"]),
        Route("/ddfs/node/tag/{name}", get_tag, methods=["GET"]),
        Route("/ddfs/node/tagnames", tagnames, methods=["GET"]),
        Route("/ddfs/node/inventory", inventory, methods=["GET"]),
        Route("/ddfs/node/delete", delete, methods=["POST"]),
        Route("/ddfs/node/fetch", fetch, methods=["POST"]),
        Route("/ddfs/{vol}/blob/{hh}/{objname}", put_blob, methods=["PUT"]),
    ])
