"""/ui/frameworks: the catalogue, each framework with its version, dependencies, typed
properties (bounds, choices, defaults) and ports, and a link to a create form with it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from disco.cluster.ui import pages
from disco.cluster.ui.cluster_routes import service
from disco.cluster.ui.form_fields import framework_fields
from disco.cluster.ui.session import require

router = APIRouter(prefix="/ui/frameworks", include_in_schema=False)


@router.get("")
def frameworks(request: Request) -> Response:
    session = require(request)
    catalog = service(request).catalog
    rows = []
    for entry in framework_fields(catalog):
        fw = catalog.get(entry["name"])
        rows.append({**entry, "version": catalog.version(fw.name),
                     "ports": [{"name": n, **p.model_dump()} for n, p in sorted(fw.ports.items())]})
    return pages.render(request, "frameworks.html", session, frameworks=rows)
