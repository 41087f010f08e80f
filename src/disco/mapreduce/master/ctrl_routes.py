"""Disco's HTTP API of the master: job submission and `/disco/ctrl/*`, as Disco clients call it."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from disco import __version__
from disco.jobpack import MAX_PACK_BYTES
from disco.mapreduce.master.errors import RequestError
from disco.mapreduce.master.master import Master

Handler = Callable[[Request], Awaitable[Response]]


def _master(request: Request) -> Master:
    return request.app.state.master


def _reply(value: Any, status: int = 200) -> Response:
    return JSONResponse(value, status_code=status)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        # Some callers send a bare job or node name rather than a JSON string.
        return raw.decode("utf-8", "replace").strip()


def _param(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise RequestError(f"missing parameter {name!r}")
    return value


def _guard(fn: Handler) -> Handler:
    """Turn RequestError into a JSON error reply rather than a 500."""
    async def wrapped(request: Request) -> Response:
        try:
            return await fn(request)
        except RequestError as exc:
            return _reply(str(exc), exc.status)
    return wrapped


async def version(request: Request) -> Response:
    return _reply(__version__)


async def job_new(request: Request) -> Response:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_PACK_BYTES:
        return _reply(["error", "job pack larger than 1 GiB"], 413)
    body = await request.body()
    if len(body) > MAX_PACK_BYTES:
        return _reply(["error", "job pack larger than 1 GiB"], 413)
    try:
        name = await _master(request).submit(body)
    except RequestError as exc:
        # Disco answers refused packs with 200 and ["error", ...]; 403/413 keep their code.
        return _reply(["error", str(exc)], exc.status if exc.status in (403, 413, 500) else 200)
    return _reply(["ok", name])


@_guard
async def joblist(request: Request) -> Response:
    jobs = sorted(_master(request).jobs.values(), key=lambda j: -j.submitted)
    return _reply([[int(j.submitted), j.status, j.name] for j in jobs])


@_guard
async def jobinfo(request: Request) -> Response:
    return _reply(_master(request).job(_param(request, "name")).info())


@_guard
async def jobevents(request: Request) -> Response:
    job = _master(request).job(_param(request, "name"))
    try:
        num = min(1000, max(0, int(request.query_params.get("num", "100"))))
    except ValueError:
        raise RequestError("num must be an integer") from None
    return _reply(job.events.last(num, request.query_params.get("filter", "")))


_RANGE = re.compile(r"bytes=(\d+)-$")


@_guard
async def rawevents(request: Request) -> Response:
    """The event log itself; a `Range: bytes=N-` header asks for what follows offset N."""
    job = _master(request).job(_param(request, "name"))
    offset = 0
    m = _RANGE.match(request.headers.get("range", "").strip())
    if m:
        offset = int(m.group(1))
    data = job.events.raw(offset)
    return Response(data, status_code=206 if m else 200, media_type="text/plain; charset=utf-8")


@_guard
async def parameters(request: Request) -> Response:
    job = _master(request).job(_param(request, "name"))
    return Response(job.pack_path.read_bytes(), media_type="application/octet-stream")


@_guard
async def stageresults(request: Request) -> Response:
    job = _master(request).job(_param(request, "name"))
    results = job.stage_results(_param(request, "stage"))
    if results is None:
        raise RequestError("unknown stage", 404)
    return _reply(results)


async def nodeinfo(request: Request) -> Response:
    return _reply(_master(request).nodeinfo())


async def get_blacklist(request: Request) -> Response:
    nodes = _master(request).registry.nodes
    return _reply(sorted(h for h, n in nodes.items() if n.blacklisted))


async def load_config_table(request: Request) -> Response:
    return _reply(_master(request).load_config_table())


async def get_settings(request: Request) -> Response:
    return _reply(_master(request).settings.as_json())


@_guard
async def get_results(request: Request) -> Response:
    body = await _json_body(request)
    if (not isinstance(body, list) or len(body) != 2 or not isinstance(body[1], list)
            or not isinstance(body[0], (int, float))):
        raise RequestError("get_results takes [timeout_ms, [jobname, ...]]")
    names = [str(n) for n in body[1]]
    return _reply(await _master(request).wait_results(float(body[0]), names))


def _name_op(op: Callable[[Master, str], Awaitable[None] | None]) -> Handler:
    @_guard
    async def handler(request: Request) -> Response:
        name = await _json_body(request)
        if not isinstance(name, str) or not name:
            raise RequestError("expected a name")
        result = op(_master(request), name)
        if result is not None:
            await result
        return _reply("")
    return handler


@_guard
async def save_config_table(request: Request) -> Response:
    _master(request).save_config_table(await _json_body(request))
    return _reply("table saved!")  # Disco's words, which its clients compare with


@_guard
async def save_settings(request: Request) -> Response:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise RequestError("save_settings takes an object")
    try:
        _master(request).settings.update(body)
    except (TypeError, ValueError) as exc:
        raise RequestError(f"bad setting: {exc}") from None
    return _reply("settings saved")


def routes() -> list[Route]:
    both = ["GET", "POST"]
    return [
        Route("/disco/version", version, methods=both),
        Route("/disco/job/new", job_new, methods=["POST"]),
        Route("/disco/ctrl/joblist", joblist, methods=both),
        Route("/disco/ctrl/jobinfo", jobinfo, methods=both),
        Route("/disco/ctrl/jobevents", jobevents, methods=both),
        Route("/disco/ctrl/rawevents", rawevents, methods=both),
        Route("/disco/ctrl/parameters", parameters, methods=both),
        Route("/disco/ctrl/get_stageresults", stageresults, methods=both),
        Route("/disco/ctrl/nodeinfo", nodeinfo, methods=both),
        Route("/disco/ctrl/get_blacklist", get_blacklist, methods=both),
        Route("/disco/ctrl/load_config_table", load_config_table, methods=both),
        Route("/disco/ctrl/get_settings", get_settings, methods=both),
        Route("/disco/ctrl/get_results", get_results, methods=["POST"]),
        Route("/disco/ctrl/kill_job", _name_op(Master.kill_job), methods=["POST"]),
        Route("/disco/ctrl/purge_job", _name_op(Master.purge_job), methods=["POST"]),
        Route("/disco/ctrl/clean_job", _name_op(Master.clean_job), methods=["POST"]),
        Route("/disco/ctrl/blacklist",
              _name_op(lambda m, h: m.set_blacklisted(h, True)), methods=["POST"]),
        Route("/disco/ctrl/whitelist",
              _name_op(lambda m, h: m.set_blacklisted(h, False)), methods=["POST"]),
        Route("/disco/ctrl/save_config_table", save_config_table, methods=["POST"]),
        Route("/disco/ctrl/save_settings", save_settings, methods=["POST"]),
    ]
