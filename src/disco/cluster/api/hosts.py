"""`/api/v1/hosts`: the SSH host pool, for admins only (`disco token create --admin`).

A host's private key arrives in the body of `POST` and goes nowhere else: not into an answer,
an error message or a log (validation errors name the field, never its value).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from pydantic import ValidationError

from disco.cluster.api.host_schemas import HostCreate, HostView
from disco.cluster.api.rest import integral, json_body, json_request
from disco.cluster.api.schemas import error_responses
from disco.cluster.api.throttle import client_address
from disco.cluster.auth import authenticate_admin
from disco.cluster.host_check import check_host
from disco.cluster.hosts import HostPool, as_view
from disco.errors import InvalidSpec

router = APIRouter(prefix="/api/v1/hosts", tags=["hosts"])
ADMIN_ONLY = {"security": [{"token": []}, {"bearer": []}]}
# Ids are 32-bit in PostgreSQL: a larger one is refused as a bad parameter, not a database error.
HOST_ID = Path(ge=1, le=2 ** 31 - 1, description="The host's id (`disco hosts list`).")
S403 = "The token is not an admin's (`admin_only`): the host pool is for admins."
S404 = "No host with this id (`no_such_host`)."


def admin(request: Request, x_auth_token: str | None = Header(default=None)) -> str:
    token = x_auth_token
    auth = request.headers.get("authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    mgr = request.app.state.manager
    return authenticate_admin(mgr.store, token, throttle=mgr.throttle, client=client_address(request))


def pool(request: Request) -> HostPool:
    return request.app.state.manager.hosts


@router.post("", status_code=201, operation_id="addHost", response_model=HostView,
             openapi_extra={**ADMIN_ONLY, **json_request(HostCreate, "One host; its key is stored encrypted.")},
             responses=error_responses(
                 401, 403, 409, 422, 429, s403=S403,
                 s409="The name, or the address and port, are in the pool already (`host_exists`).",
                 s422="A field is missing or malformed (`invalid_host`, `invalid_private_key`, `invalid_host_key`)."))
async def add_host(request: Request, _: str = Depends(admin)) -> dict[str, Any]:
    body = _host_create(integral(await json_body(request), ("port",)))
    hosts = pool(request)
    name = body.name or (body.address if body.port == 22 else f"{body.address}:{body.port}")
    row = hosts.add(name=name, address=body.address, port=body.port, user=body.user,
                    private_key=body.private_key, host_key=body.host_key or "", prefix=body.prefix,
                    labels=body.labels)
    checked, recorded = await check_host(hosts, row.id)
    return as_view(checked, host_key_just_recorded=recorded)


def _host_create(body: Any) -> HostCreate:
    try:
        return HostCreate.model_validate(body)
    except ValidationError as exc:
        # loc, msg and type only: pydantic's `input` would repeat what was sent, the key included.
        issues = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        where = ", ".join(".".join(str(part) for part in issue["loc"]) or "body" for issue in issues)
        raise InvalidSpec(f"invalid host: {where}", code="invalid_host", details=issues) from None


@router.get("", operation_id="listHosts", response_model=list[HostView], openapi_extra=ADMIN_ONLY,
            responses=error_responses(401, 403, 429, s403=S403))
def list_hosts(request: Request, _: str = Depends(admin)) -> list[dict[str, Any]]:
    return [as_view(row) for row in pool(request).list()]


@router.get("/{host_id}", operation_id="getHost", response_model=HostView, openapi_extra=ADMIN_ONLY,
            responses=error_responses(401, 403, 404, 422, 429, s403=S403, s404=S404,
                                      s422="An id that is not a positive 32-bit integer (`invalid_request`)."))
def get_host(request: Request, host_id: int = HOST_ID, _: str = Depends(admin)) -> dict[str, Any]:
    return as_view(pool(request).get(host_id))


@router.delete("/{host_id}", status_code=204, operation_id="removeHost", response_class=Response,
               openapi_extra=ADMIN_ONLY,
               responses={**error_responses(401, 403, 404, 409, 422, 429, s403=S403, s404=S404,
                                            s409="A cluster holds the host (`host_in_use`).",
                                            s422="An id that is not a positive 32-bit integer (`invalid_request`)."),
                          204: {"description": "Removed from the pool (nothing on the host is touched)."}})
def remove_host(request: Request, host_id: int = HOST_ID, _: str = Depends(admin)) -> Response:
    pool(request).remove(host_id)
    return Response(status_code=204)


@router.post("/{host_id}/check", operation_id="checkHost", response_model=HostView, openapi_extra=ADMIN_ONLY,
             responses=error_responses(401, 403, 404, 422, 429, s403=S403, s404=S404,
                                       s422="An id that is not a positive 32-bit integer (`invalid_request`)."))
async def check(request: Request, host_id: int = HOST_ID, _: str = Depends(admin)) -> dict[str, Any]:
    """Connect (the recorded host key enforced), look at the host, record what was found; the
    host becomes `free` when it passes and `unreachable` when it does not (unless in use)."""
    checked, recorded = await check_host(pool(request), host_id)
    return as_view(checked, host_key_just_recorded=recorded)
