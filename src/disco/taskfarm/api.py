"""The farm's FastAPI router under /api/v1/farm: owners' routes (a tenant from the injected
`authenticate`) and the clients' protocol (enrollment key, then a client token). Mounted on the
service manager's app and on the standalone server (server.py) alike.

Bodies are strict pydantic models (schemas.py): FastAPI answers a bad one with 422 before the
route runs, and the app's handler puts it in the error envelope."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Path, Request, Response

from disco.errors import InvalidSpec
from disco.taskfarm import schemas
from disco.taskfarm.models import Client
from disco.taskfarm.service import Farm, OutputTooLarge

# (token or None, the caller's address) -> tenant; raises Unauthorized (401) or a 429 DiscoError.
Authenticate = Callable[[str | None, str], str]
PREFIX = "/api/v1/farm"
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
OWNER = {"security": [{"token": []}, {"bearer": []}]}
CLIENT = {"security": [{"bearer": []}]}
ENROLL = {"security": [{"farmKey": []}]}
MEANINGS = {
    401: "No token, or one this server does not know.",
    404: "No such resource for this tenant or client (or no such DDFS tag).",
    409: "This server is not set up for what a valid request asks (`ddfs_not_configured`: no DDFS master).",
    413: "Over a size limit (the input's units, an upload, the project's max_output_bytes).",
    422: "A body or parameter that is not the schema's (`invalid_request`), or input the server cannot use.",
    403: "Input that names a file or host this server does not allow (a DDFS replica off the cluster's nodes).",
    429: "Too many failed authentications: wait `Retry-After` seconds.",
    502: "The DDFS master or its nodes did not answer (`ddfs_unreachable`).",
    503: "The farm's database is not answering or too busy (`unavailable`): wait `Retry-After` seconds.",
}
BYTES = {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI answers for the error statuses a route gives, all with the error envelope."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        answer: dict[str, Any] = {"description": MEANINGS[status],
                                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}}
        if status in (429, 503):
            answer["headers"] = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}}
        out[status] = answer
    return out


def json_answer(body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """The protocol's hot answers (work, results), serialized here: they are built by
    the farm in their schema's shape (None left out), so FastAPI's validation of the response
    model, which cost about as much as the database work, is skipped. The model stays the route's
    documented answer, and the protocol tests check the shape."""
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json", headers=headers)


def work_answer(leases: list[dict[str, Any]], answers: list[dict[str, Any]] | None,
                retry_after_s: float) -> tuple[dict[str, Any], dict[str, str]]:
    """POST …/work's body and headers: with no leases, when to ask again; `results` only when
    the request carried some."""
    wait = 0.0 if leases else retry_after_s
    body: dict[str, Any] = {"leases": leases, "retry_after_s": wait}
    if answers is not None:
        body["results"] = answers
    return body, {} if leases else {"Retry-After": str(int(wait))}


def _bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else None


def make_router(farm: Farm, authenticate: Authenticate) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["farm"])

    def owner(request: Request) -> str:
        token = request.headers.get("x-auth-token") or _bearer(request)
        return authenticate(token, request.client.host if request.client else "")

    def client(request: Request) -> Client:
        return farm.client(_bearer(request))

    def input_url(request: Request) -> str:
        return str(request.base_url).rstrip("/") + PREFIX + "/units/{unit_id}/input"

    # -- owners -----------------------------------------------------------------------------------

    @router.post("/projects", operation_id="createFarmProject", status_code=201, response_model=schemas.ProjectCreated,
                 openapi_extra=OWNER, responses=errors(401, 403, 404, 409, 413, 422, 429, 502))
    def create_project(spec: schemas.ProjectSpec, tenant: str = Depends(owner)) -> dict[str, Any]:
        project_id, units = farm.create_project(tenant, spec)
        return {"project_id": project_id, "units": units}

    @router.get("/projects", operation_id="listFarmProjects", response_model=schemas.ProjectList,
                openapi_extra=OWNER, responses=errors(401, 429))
    def list_projects(tenant: str = Depends(owner)) -> dict[str, Any]:
        return {"projects": farm.list_projects(tenant)}

    @router.get("/projects/{project_id}", operation_id="getFarmProject", response_model=schemas.ProjectView,
                openapi_extra=OWNER, responses=errors(401, 404, 422, 429))
    def get_project(project_id: str = Path(pattern=UUID_PATTERN), tenant: str = Depends(owner)) -> dict[str, Any]:
        return farm.project(tenant, project_id)

    @router.get("/projects/{project_id}/results", operation_id="getFarmProjectResults",
                response_model=schemas.ProjectResults, openapi_extra=OWNER, responses=errors(401, 404, 422, 429))
    def get_results(project_id: str = Path(pattern=UUID_PATTERN), tenant: str = Depends(owner)) -> dict[str, Any]:
        return farm.results(tenant, project_id)

    @router.get("/projects/{project_id}/dead", operation_id="getFarmProjectDeadLetters",
                response_model=schemas.DeadLetters, openapi_extra=OWNER, responses=errors(401, 404, 422, 429))
    def get_dead(project_id: str = Path(pattern=UUID_PATTERN), tenant: str = Depends(owner)) -> dict[str, Any]:
        return farm.dead(tenant, project_id)

    @router.post("/projects/{project_id}/cancel", operation_id="cancelFarmProject", response_model=schemas.ProjectView,
                 openapi_extra=OWNER, responses=errors(401, 404, 422, 429, 503))
    def cancel(project_id: str = Path(pattern=UUID_PATTERN), tenant: str = Depends(owner)) -> dict[str, Any]:
        return farm.cancel(tenant, project_id)

    @router.get("/overview", operation_id="getFarmOverview", response_model=schemas.FarmOverview,
                openapi_extra=OWNER, responses=errors(401, 429, 503),
                description="The tenant's projects and clients at a glance: units done, in flight and failed, "
                            "units a minute, clients online with each slot's CPU and memory, invalid results "
                            "per client. The dashboard's farm page shows the same numbers.")
    def get_overview(tenant: str = Depends(owner)) -> dict[str, Any]:
        return farm.overview(tenant)

    @router.post("/keys", operation_id="createFarmKey", status_code=201, response_model=schemas.KeyCreated,
                 openapi_extra=OWNER, responses=errors(401, 422, 429))
    def create_key(body: schemas.KeyCreate, tenant: str = Depends(owner)) -> dict[str, Any]:
        key_id, key = farm.create_key(tenant, body.description)
        return {"key_id": key_id, "key": key}

    @router.get("/clients", operation_id="listFarmClients", response_model=schemas.ClientList,
                openapi_extra=OWNER, responses=errors(401, 429))
    def list_clients(tenant: str = Depends(owner)) -> dict[str, Any]:
        return {"clients": farm.list_clients(tenant)}

    # -- clients ----------------------------------------------------------------------------------

    @router.post("/clients", operation_id="enrollFarmClient", status_code=201, response_model=schemas.ClientEnrolled,
                 openapi_extra=ENROLL, responses=errors(401, 422, 429))
    def enroll(body: schemas.ClientEnroll, request: Request) -> dict[str, Any]:
        client_id, token = farm.enroll(request.headers.get("x-farm-key"), body.name, body.slots, body.platform,
                                       body.cpus, body.memory_mb)
        return {"client_id": client_id, "client_token": token}

    @router.post("/work", operation_id="requestFarmWork", response_model=schemas.WorkAnswer,
                 response_model_exclude_none=True, openapi_extra=CLIENT,
                 responses={200: {"headers": {"Retry-After": {
                     "description": "With no leases: seconds before asking again.", "schema": {"type": "string"}}}},
                     **errors(401, 422, 429, 503)})
    def work(body: schemas.WorkRequest, request: Request, who: Client = Depends(client)) -> Response:
        if body.results:
            answers, leases = farm.exchange(who, [item.model_dump() for item in body.results], body.seconds,
                                            body.slots, input_url(request))
        else:
            answers, leases = None, farm.work(who, body.seconds, body.slots, input_url(request))
        return json_answer(*work_answer(leases, answers, farm.config.retry_after_s))

    @router.post("/heartbeat", operation_id="farmHeartbeat", response_model=schemas.HeartbeatAnswer,
                 openapi_extra=CLIENT, responses=errors(401, 422, 429, 503))
    def heartbeat(body: schemas.HeartbeatRequest, who: Client = Depends(client)) -> dict[str, Any]:
        slots = None if body.slots is None else [slot.model_dump() for slot in body.slots]
        return {"instances": farm.heartbeat(who, list(body.instances), slots)}

    @router.post("/results", operation_id="reportFarmResults", response_model=schemas.ResultsAnswer,
                 response_model_exclude_none=True, openapi_extra=CLIENT, responses=errors(401, 422, 429, 503))
    def results(body: schemas.ResultBatch, who: Client = Depends(client)) -> Response:
        return json_answer({"results": farm.report(who, [item.model_dump() for item in body.results])})

    @router.put("/instances/{instance_id}/output", operation_id="uploadFarmOutput", status_code=204,
                openapi_extra={**CLIENT, "requestBody": {"required": True, **BYTES}, "parameters": [{
                    "name": "X-Output-SHA256", "in": "header", "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}]},
                responses=errors(401, 404, 413, 422, 429, 503))
    async def upload(request: Request, instance_id: int = Path(ge=1, le=2 ** 31 - 1), who: Client = Depends(client)) -> Response:
        declared = request.headers.get("x-output-sha256", "")
        if len(declared) != 64 or any(c not in "0123456789abcdef" for c in declared):
            raise InvalidSpec("X-Output-SHA256 must be the output SHA-256, 64 hex digits", code="invalid_request") \
                from None
        data = await request.body()
        if len(data) > MAX_UPLOAD_BYTES:
            raise OutputTooLarge(f"upload over {MAX_UPLOAD_BYTES} bytes")
        farm.upload(who, instance_id, data, declared)
        return Response(status_code=204)

    @router.get("/units/{unit_id}/input", operation_id="getFarmUnitInput", response_class=Response,
                responses={200: BYTES, **errors(401, 404, 422, 429)}, openapi_extra=CLIENT)
    def unit_input(unit_id: int = Path(ge=1, le=2 ** 31 - 1), who: Client = Depends(client)) -> Response:
        return Response(farm.unit_input(who, unit_id), media_type="application/octet-stream")

    @router.get("/code/{sha256}", operation_id="getFarmCode", response_class=Response,
                responses={200: BYTES, **errors(401, 404, 422, 429)}, openapi_extra=CLIENT)
    def code(sha256: str = Path(pattern=r"^[0-9a-f]{64}$"), _who: Client = Depends(client)) -> Response:
        return Response(farm.code_blob(sha256), media_type="application/octet-stream")

    return router
