"""OCCI-compatible front end, as the ICCLab DISCO README drives it with curl.

    GET /-/                 query interface (the `disco` kind and its actions)
    POST /disco/            create -> 201, Location: <base>/disco/<id>; with the heat attributes
                            and the user's OpenStack credentials, an OpenStack cluster
                            (occi_cloud.py, docs/openstack.md#the-seeds-occi-interface)
    GET /disco/             X-OCCI-Location of the tenant's clusters
    GET /disco/<id>         text/occi, text/plain or application/occi+json
    POST /disco/<id>        action="suspend" / "resume", or a new slavecount (scale)
    DELETE /disco/<id>      200
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from disco.cluster.api import occi_openapi
from disco.cluster.api.occi_cloud import cloud_for, header_credentials
from disco.cluster.api.occi_attributes import (SLAVECOUNT, attributes_of, integer_attribute,
                                               reject_control_characters, spec_from_attributes)
from disco.cluster.api.occi_format import (ACTION_SCHEME, CORE_SCHEME, SM_SCHEME, Category, MalformedOcci,
                                           parse_attributes, parse_categories, render_attribute)
from disco.cluster.api.throttle import client_address
from disco.cluster.auth import authenticate
from disco.cluster.models import Cluster
from disco.cluster.service import ClusterService
from disco.errors import InvalidSpec, NotFound

router = APIRouter(tags=["occi"])
ACTIONS = ("suspend", "resume")
KIND = Category("disco", SM_SCHEME, "kind", {
    "title": "DISCO: distributed computing clusters",
    "rel": CORE_SCHEME + "resource",
    "location": "/disco/",
    "attributes": " ".join([
        "icclab.disco.components.heat.slavecount", "icclab.disco.dependencies.inject",
        "icclab.disco.components.heat.masterimage", "icclab.disco.components.heat.slaveimage",
        "icclab.disco.components.heat.masterflavor", "icclab.disco.components.heat.slaveflavor",
        "icclab.disco.components.heat.networkname", "icclab.disco.components.heat.externalnetworkname",
        "icclab.disco.components.heat.network", "icclab.disco.components.heat.cidr",
        "icclab.disco.deployer.username", "icclab.disco.deployer.password", "icclab.disco.deployer.region",
        "icclab.disco.provider", "mcn.service.state{immutable}", "stackid{immutable}", "stack_status{immutable}",
        "external_ip{immutable}", "ssh_key_name{immutable}", "ssh_public_key{immutable}",
        "ssh_private_key{immutable}",
    ]),
    "actions": " ".join(ACTION_SCHEME + a for a in ACTIONS),
})


def _tenant(request: Request) -> str:
    manager = request.app.state.manager
    return authenticate(manager.store, request.headers.get("x-auth-token"),
                        request.headers.get("x-tenant-name") or "",
                        throttle=manager.throttle, client=client_address(request))


def _service(request: Request) -> ClusterService:
    return request.app.state.manager.service


def _base(request: Request) -> str:
    """The configured public URL, never the request's Host header (which the client chooses)."""
    return request.app.state.manager.settings.public_url


def _wants(request: Request) -> str:
    accept = request.headers.get("accept", "")
    for media in ("application/occi+json", "application/json", "text/occi", "text/uri-list", "text/plain"):
        if media in accept:
            return "application/occi+json" if media == "application/json" else media
    return "text/plain"


def _attribute_headers(request: Request) -> dict[str, str]:
    attrs = parse_attributes([_utf8(h) for h in request.headers.getlist("x-occi-attribute")])
    reject_control_characters(attrs)
    return attrs


def _categories(request: Request) -> list[Category]:
    """The request's categories; a request names at most one (the kind, or an action)."""
    categories = parse_categories([_utf8(h) for h in request.headers.getlist("category")])
    if len(categories) > 1:
        terms = ", ".join(c.term for c in categories)
        raise MalformedOcci(f"{len(categories)} categories given ({terms}); give exactly one",
                            code="multiple_categories", details={"categories": [c.term for c in categories]})
    return categories


def _utf8(header: str) -> str:
    """Starlette decodes header bytes as Latin-1; curl sends UTF-8, so read them as such."""
    try:
        return header.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return header


def _live(svc: ClusterService, tenant: str, cluster_id: str) -> Cluster:
    """The tenant's cluster, as OCCI sees it: a deleted cluster no longer exists (404)."""
    cluster = svc.get(tenant, cluster_id)
    if cluster.state == "deleted":
        raise NotFound(f"no cluster {cluster_id}", details={"cluster": cluster_id})
    return cluster


def _lines(categories: list[Category], attributes: dict[str, Any], locations: list[str],
           media: str) -> Response:
    pairs = [("Category", c.render()) for c in categories]
    pairs += [("X-OCCI-Attribute", render_attribute(k, v)) for k, v in attributes.items()]
    pairs += [("X-OCCI-Location", loc) for loc in locations]
    if media == "text/occi":
        response = Response("OK", media_type="text/occi")
        for name, value in pairs:
            # Header values are one line; newlines inside attributes are already escaped.
            response.headers.append(name, value)
        return response
    if media == "text/uri-list":
        return Response("".join(f"{loc}\n" for loc in locations), media_type="text/uri-list")
    return Response("".join(f"{name}: {value}\n" for name, value in pairs), media_type="text/plain")


@router.get("/-/", **occi_openapi.QUERY)
def query_interface(request: Request) -> Response:
    _tenant(request)
    actions = [Category(a, ACTION_SCHEME, "action", {"title": f"{a} the cluster"}) for a in ACTIONS]
    categories = [KIND, *actions]
    if _wants(request) == "application/occi+json":
        return JSONResponse({"kinds": [{"term": KIND.term, "scheme": KIND.scheme, **KIND.params}],
                             "actions": [{"term": a.term, "scheme": a.scheme, **a.params} for a in actions],
                             "mixins": []})
    return _lines(categories, {}, [], _wants(request))


@router.post("/disco/", status_code=201, **occi_openapi.CREATE)
def create(request: Request) -> Response:
    tenant = _tenant(request)
    categories = _categories(request)
    if not categories:
        raise MalformedOcci("missing Category header (disco kind)", code="missing_category")
    category = categories[0]
    if (category.term, category.scheme, category.cls or "kind") != ("disco", SM_SCHEME, "kind"):
        raise MalformedOcci(f"unknown kind {category.term!r} with scheme {category.scheme!r}",
                            code="unknown_kind", details={"expected": KIND.render()})
    svc = _service(request)
    settings = request.app.state.manager.settings
    spec = spec_from_attributes(_attribute_headers(request), svc.catalog,
                                default_provider=settings.default_provider,
                                headers=header_credentials(request.headers),
                                cloud=lambda credentials: cloud_for(settings, credentials))
    cluster = svc.create(tenant, spec)
    location = f"{_base(request)}/disco/{cluster.id}"
    return Response("OK", status_code=201, media_type="text/plain",
                    headers={"Location": location, "X-OCCI-Location": location})


@router.get("/disco/", **occi_openapi.COLLECTION)
def collection(request: Request) -> Response:
    tenant = _tenant(request)
    locations = [f"{_base(request)}/disco/{c.id}" for c in _service(request).list(tenant)]
    media = _wants(request)
    if media == "application/occi+json":
        return JSONResponse({"locations": locations})
    return _lines([], {}, locations, media)


@router.get("/disco/{cluster_id}", **occi_openapi.RETRIEVE)
def retrieve(request: Request, cluster_id: str) -> Response:
    tenant = _tenant(request)
    svc = _service(request)
    cluster = _live(svc, tenant, cluster_id)
    attributes = attributes_of(cluster, svc.private_key(cluster), _base(request))
    media = _wants(request)
    if media == "application/occi+json":
        return JSONResponse({
            "id": cluster.id,
            "kind": SM_SCHEME + "disco",
            "mixins": [],
            "actions": [ACTION_SCHEME + a for a in ACTIONS],
            "links": [],
            "attributes": attributes,
        })
    return _lines([Category("disco", SM_SCHEME, "kind")], attributes, [], media)


@router.post("/disco/{cluster_id}", **occi_openapi.UPDATE)
def update(request: Request, cluster_id: str) -> Response:
    tenant = _tenant(request)
    svc = _service(request)
    attrs = _attribute_headers(request)
    # Every way of naming the action (query, attribute, action Category) must agree.
    named = {a for a in (request.query_params.get("action"), attrs.pop("action", None)) if a}
    for category in _categories(request):
        if category.cls == "action":
            if category.scheme != ACTION_SCHEME:
                raise MalformedOcci(f"unknown action scheme {category.scheme!r}", code="unknown_action",
                                    details={"expected": ACTION_SCHEME})
            named.add(category.term)
    if len(named) > 1:
        raise MalformedOcci(f"conflicting actions {sorted(named)}", code="unknown_action")
    action = named.pop() if named else None
    # Check the whole request before changing anything, so a 4xx leaves the cluster as it was.
    if action is not None and action not in ACTIONS:
        raise MalformedOcci(f"unknown action {action!r} (suspend, resume)", code="unknown_action")
    workers = None
    if attrs:
        if set(attrs) != {SLAVECOUNT}:
            raise InvalidSpec(f"only {SLAVECOUNT} can be changed on a cluster", code="immutable_attribute",
                              details={"attributes": sorted(attrs)})
        workers = integer_attribute(SLAVECOUNT, attrs[SLAVECOUNT])
    if action is not None and workers is not None:
        raise MalformedOcci("give either an action or a new slavecount, not both", code="ambiguous_update")
    if action is None and workers is None:
        raise MalformedOcci('nothing to do: give action="suspend"/"resume" or a new slavecount')
    _live(svc, tenant, cluster_id)
    if action is not None:
        getattr(svc, action)(tenant, cluster_id)
    else:
        svc.scale(tenant, cluster_id, workers)
    return Response("OK", media_type="text/plain")


@router.delete("/disco/{cluster_id}", **occi_openapi.DELETE)
def delete(request: Request, cluster_id: str) -> Response:
    tenant = _tenant(request)
    svc = _service(request)
    _live(svc, tenant, cluster_id)
    svc.delete(tenant, cluster_id)
    return Response("OK", media_type="text/plain")
