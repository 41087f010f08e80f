"""/ui/clusters/new: the create form, its plan (the dry run) and the create itself. The posted
form becomes the REST API's JSON body and goes through the very same `parse_spec` and
`ClusterService.create` (or `plan_cluster`): one source of truth for every check. On an error
nothing is created and the form comes back with the message next to its field."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from disco.cluster.dry_run import plan_cluster
from disco.cluster.spec import parse_spec
from disco.cluster.ui import csrf, pages
from disco.cluster.ui.cluster_routes import service
from disco.cluster.ui.create_form import GENERAL, FormValues, field_errors, spec_body, values_from
from disco.cluster.ui.form_fields import framework_fields, provider_fields
from disco.cluster.ui.session import Session, require
from disco.errors import DiscoError
from disco.providers import available as available_providers

router = APIRouter(prefix="/ui/clusters", include_in_schema=False)


@router.get("/new")
def new_cluster(request: Request) -> Response:
    """The empty form, or one filled from the query string: provider, workers, frameworks
    (repeated), as the recommendation engine links to it."""
    session = require(request)
    query = csrf.Form(list(request.query_params.multi_items()))
    values = values_from(query)
    return _form(request, session, values)


@router.post("/new")
async def create(request: Request) -> Response:
    session = require(request)
    form = await csrf.read_form(request)
    csrf.check(session.csrf, form)
    svc = service(request)
    values = values_from(form)
    body: dict[str, Any] = {}
    try:
        body = spec_body(values, form.get("cloud"), svc.catalog)
        spec = parse_spec(body)
        if form.get("do") == "plan":
            plan = await asyncio.to_thread(plan_cluster, svc, session.tenant, spec)
            return _form(request, session, values, plan=plan)
        cluster = svc.create(session.tenant, spec)
    except DiscoError as exc:
        return _form(request, session, values, errors=field_errors(exc, body), status=exc.status)
    return pages.redirect(f"/ui/clusters/{cluster.id}")


def _form(request: Request, session: Session, values: FormValues, *, errors: dict[str, str] | None = None,
          plan: dict[str, Any] | None = None, status: int = 200) -> Response:
    svc = service(request)
    providers = available_providers()
    errors = errors or {}
    return pages.render(
        request, "new.html", session, status=status, values=values, errors=errors, general=errors.get(GENERAL),
        default_provider=svc.settings.default_provider, providers=provider_fields(providers),
        frameworks=framework_fields(svc.catalog),
        open_frameworks={key.split(".")[1] for key in errors if key.startswith("prop.")}, max_workers=svc.settings.max_workers, plan=plan)
