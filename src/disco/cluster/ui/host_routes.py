"""/ui/hosts: the SSH host pool, for admins (as /api/v1/hosts): list, add (checked at once, as
the API does), check again, remove. A host's private key is posted once and never shown, not
even back in the form after an error."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from disco.cluster.api.host_schemas import HostCreate
from disco.cluster.host_check import check_host
from disco.cluster.hosts import HostPool, as_view
from disco.cluster.ui import csrf, pages
from disco.cluster.ui.csrf import as_int
from disco.cluster.ui.session import Session, require
from disco.errors import DiscoError, Forbidden

router = APIRouter(prefix="/ui/hosts", include_in_schema=False)
FIELDS = ("name", "address", "port", "user", "host_key", "prefix", "labels")  # private_key: never echoed


def admin(request: Request) -> Session:
    session = require(request)
    if not session.admin:
        raise Forbidden("the host pool is for admins (a token made with `disco token create --admin`)",
                        code="admin_only")
    return session


def pool(request: Request) -> HostPool:
    return request.app.state.manager.hosts


@router.get("")
def hosts(request: Request) -> Response:
    return _page(request, admin(request))


def _page(request: Request, session: Session, *, values: dict[str, str] | None = None,
          errors: dict[str, str] | None = None, status: int = 200, notice: str = "") -> Response:
    rows = [as_view(row) for row in pool(request).list()]
    return pages.render(request, "hosts.html", session, status=status, hosts=rows, values=values or {},
                        errors=errors or {}, notice=notice)


@router.post("")
async def add(request: Request) -> Response:
    session = admin(request)
    form = await csrf.read_form(request)
    csrf.check(session.csrf, form)
    values = {key: form.get(key).strip() for key in FIELDS}
    body: dict[str, Any] = {"address": values["address"], "user": values["user"],
                            "private_key": form.get("private_key")}
    for key in ("name", "host_key", "prefix"):
        if values[key]:
            body[key] = values[key]
    if values["port"]:
        body["port"] = as_int(values["port"])
    if values["labels"]:
        body["labels"] = [label.strip() for label in values["labels"].split(",") if label.strip()]
    try:
        new = HostCreate.model_validate(body)
    except ValidationError as exc:
        # loc and msg only: pydantic's `input` would repeat what was sent, the key included.
        errors: dict[str, str] = {}
        for error in exc.errors():
            key = str(error["loc"][0]) if error["loc"] else "_form"
            errors[key] = "; ".join(filter(None, [errors.get(key), error["msg"]]))
        return _page(request, session, values=values, errors=errors, status=422)
    hosts = pool(request)
    name = new.name or (new.address if new.port == 22 else f"{new.address}:{new.port}")
    try:
        row = hosts.add(name=name, address=new.address, port=new.port, user=new.user,
                        private_key=new.private_key, host_key=new.host_key or "", prefix=new.prefix,
                        labels=new.labels)
    except DiscoError as exc:
        return _page(request, session, values=values, errors={"_form": exc.message}, status=exc.status)
    await check_host(hosts, row.id)  # as the API: checked at once; the list shows the outcome
    return pages.redirect("/ui/hosts")


@router.post("/{host_id}/{action}")
async def host_action(request: Request, host_id: int, action: str) -> Response:
    session = admin(request)
    csrf.check(session.csrf, await csrf.read_form(request))
    hosts = pool(request)
    hosts.get(host_id)  # 404 for no such host
    try:
        if action == "check":
            await check_host(hosts, host_id)
        elif action == "remove":
            hosts.remove(host_id)
        else:
            return pages.error_page(request, 404, f"no such action: {action}", "unknown_action")
    except DiscoError as exc:
        return _page(request, session, errors={"_form": exc.message}, status=exc.status)
    return pages.redirect("/ui/hosts")
