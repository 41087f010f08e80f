"""Puts the dashboard into the service manager's app: its routes (none in the OpenAPI schema)
and its session store."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from starlette.responses import Response

from disco.cluster.ui import (auth_routes, catalog_routes, cluster_routes, create_routes, farm_routes, host_routes,
                              live, pages, recommend_routes)
from disco.cluster.ui.session import SessionStore, SignInNeeded


def install_ui(app: FastAPI) -> None:
    app.state.ui_sessions = SessionStore()
    # create_routes first: /ui/clusters/new must win over /ui/clusters/{cluster_id}.
    for module in (auth_routes, create_routes, cluster_routes, live, catalog_routes, host_routes, recommend_routes,
                   farm_routes):
        app.include_router(module.router)

    @app.exception_handler(SignInNeeded)
    async def _sign_in(request: Request, _: SignInNeeded) -> Response:
        if request.url.path.startswith("/ui/live/"):  # a stream or a check: no page to go to
            return pages.error_page(request, 401, "Sign in first.", "not_signed_in")
        if request.method == "GET":  # back to this page after signing in (a link into a form, say)
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return pages.redirect(f"/ui/signin?{urlencode({'next': target})}")
        return pages.redirect("/ui/signin")
