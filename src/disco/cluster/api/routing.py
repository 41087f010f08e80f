"""Answers for requests no route takes: a path nothing serves (404) or a method the path does
not have (405), in the error envelope like every other error.

Starlette's own 405 names only the methods of the first route whose path matched, and a path
here is often served by several routes (GET, PATCH and DELETE on a cluster are three), so the
`Allow` header is worked out again: from the OpenAPI schema's paths (every API route is there,
and `Allow` then says what the schema says) and from the plain routes outside it (`/docs`,
`/openapi.json`).
"""

from __future__ import annotations

import re
from functools import lru_cache

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"}


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route serves at this request's path."""
    path = request.url.path
    methods: set[str] = set()
    for template, operations in app.openapi()["paths"].items():
        if _template_regex(template).fullmatch(path):
            methods |= {method.upper() for method in operations if method.upper() in HTTP_METHODS}
    for route in app.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


@lru_cache(maxsize=256)
def _template_regex(template: str) -> re.Pattern[str]:
    """`/clusters/{cluster_id}` -> a pattern its paths match (a parameter is one segment)."""
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts))


def route_error(app: FastAPI, request: Request, exc: HTTPException) -> JSONResponse:
    path = request.url.path
    if exc.status_code == 405:
        allowed = allowed_methods(app, request)
        return JSONResponse(
            {"error": {"code": "method_not_allowed",
                       "message": f"{request.method} is not allowed on {path} (allowed: {', '.join(allowed)})",
                       "details": {"allowed": allowed}}},
            status_code=405, headers={"Allow": ", ".join(allowed)})
    if exc.status_code == 404:
        return JSONResponse({"error": {"code": "not_found", "message": f"no such path: {path}"}}, status_code=404)
    return JSONResponse({"error": {"code": f"http_{exc.status_code}", "message": str(exc.detail)}},
                        status_code=exc.status_code, headers=exc.headers)
