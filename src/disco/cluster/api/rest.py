"""The JSON REST API under /api/v1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

import disco
from disco.cluster.api import schemas
from disco.cluster.api.schemas import error_responses, ref
from disco.cluster.api.throttle import client_address
from disco.cluster.auth import authenticate
from disco.cluster.credentials import ClusterCredentials, client_credentials
from disco.cluster.dry_run import plan_cluster
from disco.cluster.service import ClusterService, event_view
from disco.cluster.spec import ClusterSpec, parse_spec
from disco.errors import DiscoError, InvalidSpec, NotFound

router = APIRouter(prefix="/api/v1")
FOLLOW_POLL_S = 1.0  # events wake followers at once; this only bounds a quiet wait
LOG_POLL_S = 0.3
# Integers a query compares with the database's (and files' offsets) are 64-bit there.
SQL_INTEGER_MAX = 2 ** 63 - 1
SPEC_INTEGERS = ("masters", "workers", "idle_timeout_s", "max_age_s")
# Every route but /health needs a token (see `tenant`); schemes named in docs.py.
AUTHENTICATED = {"security": [{"token": []}, {"bearer": []}]}
# Answers leave out the keys that are absent (a cluster's outputs before it is ready, a
# property's unset bounds) instead of filling them with nulls.
SHAPED = {"response_model_exclude_unset": True}
TEXT = {"content": {"text/plain": {"schema": {"type": "string"}}}}
# With `follow=true`: server-sent events, each described as {"event", "id", "data"}.
EVENT_STREAM = {"text/event-stream": {"schema": {
    "type": "object", "required": ["event", "id", "data"],
    "properties": {"event": {"const": "cluster-event"}, "id": {"type": "string", "pattern": "^[0-9]+$"},
                   "data": {"type": "string", "contentMediaType": "application/json",
                            "contentSchema": ref(schemas.Event)}}}}}
LOG_STREAM = {"text/event-stream": {"schema": {
    "type": "object", "required": ["data"],
    "properties": {"event": {"const": "message"}, "data": {"type": "string", "description": "One line of the log."}}}}}


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
    # Read here, not as a FastAPI body parameter, so that a bad body gets our error codes;
    # routes declare the body's schema in `openapi_extra` instead.
    raw = await request.body()
    try:
        return json.loads(raw or b"null", parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise InvalidSpec("request body is not valid JSON", code="invalid_json") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def integral(body: Any, fields: tuple[str, ...]) -> Any:
    """JSON has one kind of number, and JSON Schema reads 2.0 as the integer 2: so do we, for
    the body's integer fields. (Text such as "2", true, or 2.5 are refused as before.)"""
    if not isinstance(body, dict):
        return body
    return {key: int(value) if key in fields and isinstance(value, float) and value.is_integer() else value
            for key, value in body.items()}


def json_request(model: type[schemas.BaseModel], description: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "description": description,
                            "content": {"application/json": {"schema": ref(model)}}}}


# A created cluster's `id` leads on to its other operations (OpenAPI links).
_BY_ID = {"cluster_id": "$response.body#/id"}
CLUSTER_LINKS = {name: {"operationId": operation, "parameters": _BY_ID} for name, operation in (
    ("GetCluster", "getCluster"), ("ScaleCluster", "scaleCluster"), ("DeleteCluster", "deleteCluster"),
    ("ClusterEvents", "listClusterEvents"))}


@router.get("/health", tags=["meta"], operation_id="health", response_model=schemas.Health)
def health() -> dict[str, Any]:
    return {"status": "ok", "version": disco.__version__}


@router.get("/frameworks", tags=["frameworks"], operation_id="listFrameworks",
            response_model=list[schemas.Framework], **SHAPED, openapi_extra=AUTHENTICATED,
            responses=error_responses(401, 429))
def frameworks(request: Request, _: str = Depends(tenant)) -> list[dict[str, Any]]:
    catalog = manager(request).catalog
    return [{
        "name": fw.name,
        "version": catalog.version(fw.name),
        "description": fw.description,
        "depends": fw.depends,
        "max_masters": fw.max_masters,
        "properties": {name: prop.model_dump(exclude_none=True) for name, prop in fw.properties.items()},
        "ports": {name: port.model_dump() for name, port in fw.ports.items()},
        "roles": sorted(fw.roles),
    } for fw in catalog.frameworks.values()]


@router.post("/clusters", status_code=201, tags=["clusters"], operation_id="createCluster",
             response_model=schemas.Cluster, **SHAPED,
             openapi_extra={**AUTHENTICATED, **json_request(ClusterSpec, "The cluster spec; every field is optional.")},
             responses={**error_responses(401, 403, 409, 422, 429, s409="The provider cannot have the nodes now: "
                                          "too few free hosts in the SSH pool (`no_free_hosts`)."), 201: {
                 "description": "Created; the reconciler starts at once.", "links": CLUSTER_LINKS,
                 "headers": {"Location": {"description": "The new cluster's URL.", "schema": {"type": "string"}}}},
                 200: {"description": "With `dry_run=true`: what a create would make; nothing is stored, "
                                      "started, reserved or written.",
                       "content": {"application/json": {"schema": ref(schemas.ClusterPlan)}}}})
async def create_cluster(request: Request, response: Response, who: str = Depends(tenant),
                         dry_run: bool = Query(False, description=(
                             "Check the spec as a create would (same errors) and answer the plan (200) "
                             "instead of creating: nodes, processes, configuration files with where each "
                             "value comes from, ports, checks, outputs and the provider's steps."))) -> Any:
    svc = service(request)
    spec = parse_spec(integral(await json_body(request), SPEC_INTEGERS))
    if dry_run:
        body = await asyncio.to_thread(plan_cluster, svc, who, spec)
        return JSONResponse(schemas.ClusterPlan.model_validate(body).model_dump(mode="json", exclude_unset=True))
    cluster = svc.create(who, spec)
    response.headers["Location"] = f"{manager(request).settings.public_url}/api/v1/clusters/{cluster.id}"
    return svc.view(cluster)


@router.get("/clusters", tags=["clusters"], operation_id="listClusters",
            response_model=list[schemas.ClusterSummary], **SHAPED, openapi_extra=AUTHENTICATED,
            responses=error_responses(401, 422, 429, s422="A query parameter of the wrong type (`invalid_request`)."))
def list_clusters(request: Request, include_deleted: bool = False,
                  who: str = Depends(tenant)) -> list[dict[str, Any]]:
    svc = service(request)
    return [svc.view(c, events=False) for c in svc.list(who, include_deleted=include_deleted)]


@router.get("/clusters/{cluster_id}", tags=["clusters"], operation_id="getCluster",
            response_model=schemas.Cluster, **SHAPED, openapi_extra=AUTHENTICATED,
            responses=error_responses(401, 404, 429))
def get_cluster(request: Request, cluster_id: str, who: str = Depends(tenant)) -> dict[str, Any]:
    svc = service(request)
    return svc.view(svc.get(who, cluster_id))


@router.patch("/clusters/{cluster_id}", tags=["clusters"], operation_id="scaleCluster",
              response_model=schemas.Cluster, **SHAPED,
              openapi_extra={**AUTHENTICATED, **json_request(schemas.ScaleRequest, 'Exactly {"workers": N}.')},
              responses=error_responses(401, 404, 409, 422, 429, s409="The cluster cannot be scaled in its state "
                                        "(`invalid_state`), or the SSH pool has too few free hosts (`no_free_hosts`)."))
async def patch_cluster(request: Request, cluster_id: str, who: str = Depends(tenant)) -> dict[str, Any]:
    svc = service(request)
    body = integral(await json_body(request), ("workers",))
    if not isinstance(body, dict) or set(body) != {"workers"}:
        raise InvalidSpec('PATCH takes {"workers": N}', code="invalid_patch")
    return svc.view(svc.scale(who, cluster_id, body["workers"]))


@router.delete("/clusters/{cluster_id}", status_code=202, tags=["clusters"], operation_id="deleteCluster",
               response_model=schemas.Cluster, **SHAPED, openapi_extra=AUTHENTICATED,
               responses=error_responses(401, 404, 429))
def delete_cluster(request: Request, cluster_id: str, who: str = Depends(tenant)) -> dict[str, Any]:
    svc = service(request)
    return svc.view(svc.delete(who, cluster_id))


@router.post("/clusters/{cluster_id}/actions/{action}", tags=["clusters"], operation_id="clusterAction",
             response_model=schemas.Cluster, **SHAPED, openapi_extra=AUTHENTICATED,
             responses=error_responses(401, 404, 409, 429, s404="No such cluster, or an action other than "
                                                                "`suspend` and `resume` (`unknown_action`)."))
def cluster_action(request: Request, cluster_id: str,
                   action: str = Path(json_schema_extra={"enum": ["suspend", "resume"]}),
                   who: str = Depends(tenant)) -> dict[str, Any]:
    svc = service(request)
    if action == "suspend":
        return svc.view(svc.suspend(who, cluster_id))
    if action == "resume":
        return svc.view(svc.resume(who, cluster_id))
    raise NotFound(f"unknown action {action!r} (suspend, resume)", code="unknown_action")


@router.get("/clusters/{cluster_id}/ssh-key", tags=["clusters"], operation_id="getSshKey",
            response_class=PlainTextResponse, openapi_extra=AUTHENTICATED,
            responses={**error_responses(401, 404, 429), 200: {**TEXT, "description": "The OpenSSH private key."}})
def ssh_private_key(request: Request, cluster_id: str, who: str = Depends(tenant)) -> str:
    svc = service(request)
    return svc.private_key(svc.get(who, cluster_id))


@router.get("/clusters/{cluster_id}/credentials", tags=["clusters"], response_model=ClusterCredentials,
            operation_id="getClusterCredentials", openapi_extra=AUTHENTICATED,
            responses=error_responses(401, 404, 409, 429))
def cluster_credentials(request: Request, response: Response, cluster_id: str,
                        who: str = Depends(tenant)) -> ClusterCredentials:
    """What the tenant's clients need to connect to the cluster's (authenticated) endpoints."""
    svc = service(request)
    response.headers["Cache-Control"] = "no-store"  # secrets: no proxy or browser keeps them
    return client_credentials(svc.get(who, cluster_id), svc.catalog, svc.box)


@router.get("/clusters/{cluster_id}/events", tags=["logs"], operation_id="listClusterEvents",
            response_model=list[schemas.Event], openapi_extra=AUTHENTICATED,
            responses={**error_responses(401, 404, 422, 429), 200: {"content": EVENT_STREAM}})
async def cluster_events(request: Request, cluster_id: str,
                         after: int = Query(default=0, ge=-SQL_INTEGER_MAX - 1, le=SQL_INTEGER_MAX),
                         follow: bool = False,
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


@router.get("/clusters/{cluster_id}/deployment.log", tags=["logs"], operation_id="getDeploymentLog",
            response_class=PlainTextResponse, openapi_extra=AUTHENTICATED,
            responses={**error_responses(401, 404, 429), 200: {**TEXT, "description": "One line per event."}})
def deployment_log(request: Request, cluster_id: str, who: str = Depends(tenant)) -> str:
    return service(request).deployment_log(who, cluster_id)


@router.get("/clusters/{cluster_id}/logs", tags=["logs"], operation_id="listLogs",
            response_model=list[schemas.LogEntry], openapi_extra=AUTHENTICATED,
            responses=error_responses(401, 404, 429))
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


@router.get("/clusters/{cluster_id}/logs/{node}/{process}", tags=["logs"], operation_id="getProcessLog",
            response_class=PlainTextResponse, response_model=None, openapi_extra=AUTHENTICATED,
            responses={**error_responses(401, 404, 422, 429), 200: {
                "description": "The log's bytes from `offset` (at most 1 MiB), or a stream with `follow=true`.",
                "content": {**TEXT["content"], **LOG_STREAM}}})
async def process_log(request: Request, cluster_id: str, node: str, process: str,
                      offset: int = Query(default=0, ge=0, le=SQL_INTEGER_MAX), follow: bool = False,
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

