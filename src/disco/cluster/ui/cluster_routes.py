"""The cluster list and a cluster's page, with its actions: scale, suspend, resume, delete (after
a confirmation page), the SSH key and the process logs. Another tenant's cluster is a 404 here
as in the API: the service looks clusters up by tenant."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from disco.cluster.service import ClusterService
from disco.cluster.ui import csrf, pages
from disco.cluster.ui.csrf import as_int
from disco.cluster.ui.cluster_view import page_data, summary
from disco.cluster.ui.session import Session, require
from disco.errors import DiscoError, NotFound

router = APIRouter(prefix="/ui/clusters", include_in_schema=False)
LOG_PAGE_BYTES = 256 * 1024  # what a log page shows at once; the live stream goes on from there


def service(request: Request) -> ClusterService:
    return request.app.state.manager.service


@router.get("")
def cluster_list(request: Request, deleted: bool = False) -> Response:
    session = require(request)
    rows = [summary(c) for c in service(request).list(session.tenant, include_deleted=deleted)]
    return pages.render(request, "clusters.html", session, clusters=rows, show_deleted=deleted)


@router.get("/{cluster_id}")
def cluster_page(request: Request, cluster_id: str) -> Response:
    session = require(request)
    return _page(request, session, cluster_id)


def _page(request: Request, session: Session, cluster_id: str, *, status: int = 200,
          errors: dict[str, str] | None = None, workers_value: Any = None, notice: str = "") -> Response:
    svc = service(request)
    data = page_data(svc, svc.get(session.tenant, cluster_id))
    return pages.render(request, "cluster.html", session, status=status, errors=errors or {},
                        workers_value=data["cluster"]["workers"] if workers_value is None else workers_value,
                        max_workers=svc.settings.max_workers, notice=notice, **data)


@router.post("/{cluster_id}/scale")
async def scale(request: Request, cluster_id: str) -> Response:
    session = require(request)
    form = await csrf.read_form(request)
    csrf.check(session.csrf, form)
    text = form.get("workers").strip()
    svc = service(request)
    svc.get(session.tenant, cluster_id)  # 404 first for a cluster that is not the tenant's
    try:
        svc.scale(session.tenant, cluster_id, as_int(text))
    except DiscoError as exc:
        return _page(request, session, cluster_id, status=exc.status, errors={"workers": exc.message},
                     workers_value=text)
    return pages.redirect(f"/ui/clusters/{cluster_id}")


@router.post("/{cluster_id}/{action}")
async def action(request: Request, cluster_id: str, action: str) -> Response:
    session = require(request)
    form = await csrf.read_form(request)
    csrf.check(session.csrf, form)
    svc = service(request)
    operations = {"suspend": svc.suspend, "resume": svc.resume, "delete": svc.delete}
    if action not in operations:
        raise NotFound(f"no such action: {action}", code="unknown_action")
    svc.get(session.tenant, cluster_id)
    if action == "delete" and form.get("confirm") != "yes":  # only the confirmation page sends it
        return pages.redirect(f"/ui/clusters/{cluster_id}/delete")
    try:
        operations[action](session.tenant, cluster_id)
    except DiscoError as exc:
        return _page(request, session, cluster_id, status=exc.status, errors={"actions": exc.message})
    return pages.redirect(f"/ui/clusters/{cluster_id}")


@router.get("/{cluster_id}/delete")
def confirm_delete(request: Request, cluster_id: str) -> Response:
    session = require(request)
    cluster = service(request).get(session.tenant, cluster_id)
    return pages.render(request, "delete.html", session, cluster=summary(cluster))


@router.get("/{cluster_id}/ssh-key")
def ssh_key(request: Request, cluster_id: str) -> Response:
    session = require(request)
    svc = service(request)
    cluster = svc.get(session.tenant, cluster_id)
    return Response(svc.private_key(cluster), media_type="text/plain", headers={
        **pages.HEADERS, "Content-Disposition": f'attachment; filename="disco-{cluster.id[:8]}.key"'})


@router.get("/{cluster_id}/logs/{node}/{process}")
def process_log(request: Request, cluster_id: str, node: str, process: str) -> Response:
    session = require(request)
    svc = service(request)
    cluster = svc.get(session.tenant, cluster_id)
    provider = svc.lifecycle.provider(cluster.provider)
    if (node, process) not in provider.log_names(cluster.id):
        raise NotFound(f"no log {node}/{process} in this cluster", code="no_such_log")
    text, offset = b"", 0
    while chunk := provider.read_log(cluster.id, node, process, offset):
        offset += len(chunk)
        text = (text + chunk)[-LOG_PAGE_BYTES:]
    return pages.render(request, "log.html", session, cluster=summary(cluster), node=node, process=process,
                        text=text.decode(errors="replace"), offset=offset)
