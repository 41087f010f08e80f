"""What the service manager publishes about its own API.

- `/openapi.json`: FastAPI's schema of the routes, plus the models the routes name only by
  reference (request bodies, OCCI answers, the error envelope), the security schemes, and the
  create body narrowed to this service manager's catalogue, providers and worker limit.
- `/docs` (Swagger UI) and `/redoc` (ReDoc): their scripts and styles come from the installed
  `fastapi-offline` package and are served from `/docs/assets/`, so the pages work with no
  internet. Nothing in them names another host, and (tests/ui, in a real browser) nothing
  they run fetches from one: ReDoc's bundle is served with its one outside image replaced.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, Response

from disco.cluster.api.host_schemas import HostCreate
from disco.cluster.api.schemas import REFERENCED_MODELS, error_responses
from disco.cluster.api.spec_schema import refine_access_schema, refine_scale_schema, refine_spec_schema
from disco.errors import NotFound
from disco.recommend.questions import Answers
from disco.providers import available as available_providers

ASSETS_URL = "/docs/assets"
# The files the pages load, and their types; nothing else under ASSETS_URL is served.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
ASSET_HEADERS = {"Cache-Control": "public, max-age=86400"}
# ReDoc's side menu always shows Redocly's logo from their CDN (no option turns it off): the
# bundle is served with that URL replaced by an empty inline image, so the page fetches nothing
# from another host (found by tests/ui/test_api_docs_browser.py's network guard).
_REWRITES = {
    "redoc.standalone.js": [(b"https://cdn.redoc.ly/redoc/logo-mini.svg",
                             b"data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")],
}
SECURITY_SCHEMES = {
    "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
              "description": "An API token (`disco token create`). REST and OCCI."},
    "bearer": {"type": "http", "scheme": "bearer", "description": "The same token as `Authorization: Bearer`. REST only."},
    "tenant": {"type": "apiKey", "in": "header", "name": "X-Tenant-Name",
               "description": "OCCI only, with `token`: the token's tenant."},
    "farmKey": {"type": "apiKey", "in": "header", "name": "X-Farm-Key",
                "description": "The task farm's enrollment key (`disco farm key create`), to enroll a client."},
}
# What the request-limits middleware (limits.py) may answer on any route, before the route runs:
# a control character in a header (400), a body, target or headers over their limits.
ANY_ROUTE_ERRORS = error_responses(
    400, 413, 414, 431, s400="A control character in a header (`invalid_header`), or as the route says.")
# Header parameters the security schemes already describe; they are not listed twice.
_AUTH_HEADERS = {"x-auth-token", "authorization", "x-tenant-name"}


def install_docs(app: FastAPI) -> None:
    """Serve the OpenAPI schema and the documentation pages (the app is made with
    `docs_url=None, redoc_url=None`)."""
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    openapi_url = app.openapi_url or "/openapi.json"
    static = files("fastapi_offline") / "static"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            # validatorUrl: no badge fetched from the public validator.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False})

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{ASSETS_URL}/favicon.png", with_google_fonts=False)

    @app.get(ASSETS_URL + "/{name}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in ASSETS:
            raise NotFound(f"no documentation asset {name!r}", code="not_found")
        if name in _REWRITES:
            return Response(_rewritten(name), media_type=ASSETS[name], headers=ASSET_HEADERS)
        return FileResponse(str(static / name), media_type=ASSETS[name], headers=ASSET_HEADERS)


@cache
def _rewritten(name: str) -> bytes:
    """An asset of fastapi-offline with its outside URLs replaced (read once, ~1 MB)."""
    content = (files("fastapi_offline") / "static" / name).read_bytes()
    for old, new in _REWRITES[name]:
        content = content.replace(old, new)
    return content


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    models = components.setdefault("schemas", {})
    for model in (*REFERENCED_MODELS, HostCreate, Answers):
        _add_model(models, model.model_json_schema(ref_template="#/components/schemas/{model}"), model.__name__)
    components["securitySchemes"] = SECURITY_SCHEMES
    for operations in schema["paths"].values():
        for operation in operations.values():
            params = [p for p in operation.get("parameters", [])
                      if not (p.get("in") == "header" and p["name"].lower() in _AUTH_HEADERS)]
            if params:
                operation["parameters"] = params
            else:
                operation.pop("parameters", None)
            responses = operation.setdefault("responses", {})
            if _is_fastapi_validation_error(responses.get("422")):
                # Our handler (app.py) answers parameter errors with the envelope, not FastAPI's body.
                responses["422"] = error_responses(
                    422, s422="A parameter of the wrong type (`invalid_request`), or as the route says.")[422]
            for status, answer in ANY_ROUTE_ERRORS.items():
                responses.setdefault(str(status), answer)
    for unused in ("HTTPValidationError", "ValidationError"):
        models.pop(unused, None)
    manager = getattr(app.state, "manager", None)
    if manager is not None:  # the service manager is up: publish what it accepts
        max_workers = manager.settings.max_workers
        refine_spec_schema(models["ClusterSpec"], manager.catalog, available_providers(), max_workers,
                           manager.settings.default_provider)
        refine_access_schema(models["Access"])
        refine_scale_schema(models["ScaleRequest"], max_workers)
        app.openapi_schema = schema
    return schema


def _add_model(models: dict[str, Any], schema: dict[str, Any], name: str) -> None:
    for sub_name, sub_schema in schema.pop("$defs", {}).items():
        models.setdefault(sub_name, sub_schema)
    models.setdefault(name, schema)


def _is_fastapi_validation_error(answer: dict[str, Any] | None) -> bool:
    schema = (answer or {}).get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref", "").endswith("/HTTPValidationError")
