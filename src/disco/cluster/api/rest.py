"""The JSON REST API under /api/v1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

import disco
from disco.cluster.api.throttle import client_address
from disco.cluster.auth import authenticate
from disco.cluster.credentials import ClusterCredentials, client_credentials
from disco.cluster.service import ClusterService, event_view
from disco.cluster.spec import parse_spec
from disco.errors import DiscoError, InvalidSpec, NotFound

router = APIRouter(prefix="/api/v1")
FOLLOW_POLL_S = 1.0  # events wake followers at once; this only bounds a quiet wait
LOG_POLL_S = 0.3


def manager(request: Request) -> Any:
    return request.app.state.manager


def service(request: Request) -> ClusterService:
    return request.app.state.manager.service


def tenant(request: Request, x_auth_token: str | None = Header(default=None)) -> str:
    token = x_auth_token
    auth = request.headers.get("authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    mgr = request.app.state.manager
    return authenticate(mgr.store, token, throttle=mgr.throttle, client=client_address(request))


async def json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"null", parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise InvalidSpec("request body is not valid JSON", code="invalid_json") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


@router.get("/health", tags=["meta"])
def health() -> dict[str, Any]:
    return {"status": "ok", "version": disco.__version__}


@router.get("/frameworks", tags=["frameworks"])
def frameworks(request: Request, _: str = Depends(tenant)) -> list[dict[str, Any]]:
    catalog = manager(request).catalog
    return [{
        "name": fw.name,
        "version": catalog.version(fw.name),
        "description": fw.description,
        "depends": fw.depends,
        "properties": {name: prop.model_dump(exclude_none=True) for name, prop in fw.properties.items()},
        "ports": {name: port.model_dump() for name, port in fw.ports.items()},
        "roles": sorted(fw.roles),
    } for fw in catalog.frameworks.values()]


@router.post("/clusters", status_code=201, tags=["clusters"])
async def create_cluster(request: Request, response: Response, who: str = Depends(tenant)) -> dict[str, Any]:
    svc = service(request)
    cluster = svc.create(who, parse_spec(await json_body(request)))
    response.headers["Location"] = f"{manager(request).settings.public_url}/api/v1/clusters/{cluster.id}"
    return svc.view(cluster)


@router.get("/clusters", tags=["clusters"])
def list_clusters(request: Request, include_deleted: bool = False,
                  who: str = Depends(tenant)) -> list[dict[str, Any]]:
    svc = service(request)
    return [svc.view(c, events=False) for c in svc.list(who, include_deleted=include_deleted)]


@router.get("/clusters/{cluster_id}", tags=["clusters"])
def get_cluster(request: Request, cluster_id: str, who: str = Depends(tenant)) -> dict[str, Any]:
    svc = service(request)
    return svc.view(svc.get(who, cluster_id))


@router.patch("/clusters/{cluster_id}", tags=["clusters"])
async def patch_cluster(request: Request, cluster_id: str, who: str = Depends(tenant)) -> dict[str, Any]:
    svc = service(request)
    body = await json_body(request)
    if not isinstance(body, dict) or set(body) != {"workers"}:
        raise InvalidSpec('PATCH takes {"workers": N}', code="invalid_patch")
    return svc.view(svc.scale(who, cluster_id, body["workers"]))


@router.delete("/clusters/{cluster_id}", status_code=202, tags=["clusters"])
def delete_cluster(request: Request, cluster_id: str, who: str = Depends(tenant)) -> dict[str, Any]:
    svc = service(request)
    return svc.view(svc.delete(who, cluster_id))


@router.post("/clusters/{cluster_id}/actions/{action}", tags=["clusters"])
def cluster_action(request: Request, cluster_id: str, action: str, who: str = Depends(tenant)) -> dict[str, Any]:
    svc = service(request)
    if action == "suspend":
        return svc.view(svc.suspend(who, cluster_id))
    if action == "resume":
        return svc.view(svc.resume(who, cluster_id))
    raise NotFound(f"unknown action {action!r} (suspend, resume)", code="unknown_action")


@router.get("/clusters/{cluster_id}/ssh-key", tags=["clusters"], response_class=PlainTextResponse)
def ssh_private_key(request: Request, cluster_id: str, who: str = Depends(tenant)) -> str:
    svc = service(request)
    return svc.private_key(svc.get(who, cluster_id))


@router.get("/clusters/{cluster_id}/credentials", tags=["clusters"], response_model=ClusterCredentials)
def cluster_credentials(request: Request, response: Response, cluster_id: str,
                        who: str = Depends(tenant)) -> ClusterCredentials:
    """What the tenant's clients need to connect to the cluster's (authenticated) endpoints."""
    svc = service(request)
    response.headers["Cache-Control"] = "no-store"  # secrets: no proxy or browser keeps them
    return client_credentials(svc.get(who, cluster_id), svc.catalog, svc.box)


@router.get("/clusters/{cluster_id}/events", tags=["logs"])
async def cluster_events(request: Request, cluster_id: str, after: int = 0, follow: bool = False,
                         who: str = Depends(tenant)) -> Any:
    svc = service(request)
    if not follow:
        return [event_view(e) for e in svc.events(who, cluster_id, after)]
    svc.get(who, cluster_id)

    async def stream() -> AsyncIterator[str]:
        last = after
        while True:
            for event in svc.events(who, cluster_id, last):
                last = event.id
                yield f"id: {event.id}\nevent: cluster-event\ndata: {json.dumps(event_view(event))}\n\n"
            if svc.get(who, cluster_id).state in ("deleted",) or await request.is_disconnected():
                return
            await svc.lifecycle.wait_for_change(FOLLOW_POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream")


@router.get("/clusters/{cluster_id}/deployment.log", tags=["logs"], response_class=PlainTextResponse)
def deployment_log(request: Request, cluster_id: str, who: str = Depends(tenant)) -> str:
    return service(request).deployment_log(who, cluster_id)


@router.get("/clusters/{cluster_id}/logs", tags=["logs"])
def list_logs(request: Request, cluster_id: str, who: str = Depends(tenant)) -> list[dict[str, str]]:
    svc = service(request)
    cluster = svc.get(who, cluster_id)
    provider = svc.lifecycle.provider(cluster.provider)
    base = f"{manager(request).settings.public_url}/api/v1/clusters/{cluster.id}"
    logs = [{"node": "-", "process": "deployment", "url": f"{base}/deployment.log"}]
    for node, process in provider.log_names(cluster.id):
        logs.append({"node": node, "process": process,
                     "url": f"{base}/logs/{node}/{process}"})
    return logs


@router.get("/clusters/{cluster_id}/logs/{node}/{process}", tags=["logs"])
async def process_log(request: Request, cluster_id: str, node: str, process: str,
                      offset: int = Query(default=0, ge=0), follow: bool = False,
                      who: str = Depends(tenant)) -> Any:
    svc = service(request)
    cluster = svc.get(who, cluster_id)
    provider = svc.lifecycle.provider(cluster.provider)
    if (node, process) not in provider.log_names(cluster.id):
        raise NotFound(f"no log {node}/{process} in cluster {cluster_id}", code="no_such_log")
    if not follow:
        return Response(provider.read_log(cluster.id, node, process, offset), media_type="text/plain")

    async def stream() -> AsyncIterator[str]:
        position = offset
        while not await request.is_disconnected():
            chunk = provider.read_log(cluster.id, node, process, position)
            if chunk:
                position += len(chunk)
                for line in chunk.decode(errors="replace").splitlines():
                    yield f"data: {line}\n\n"
            else:
                try:
                    if svc.get(who, cluster_id).state == "deleted":
                        return
                except DiscoError:
                    return
                await asyncio.sleep(LOG_POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream")

