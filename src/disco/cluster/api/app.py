"""Builds the FastAPI application and the service manager behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

import disco
from disco.cluster.api import hosts, node_payload, occi, recommendations, rest
from disco.cluster.api.docs import install_docs
from disco.cluster.api.routing import route_error
from disco.cluster.api.limits import RequestLimits
from disco.cluster.api.throttle import FailedAuthThrottle
from disco.cluster.auth import authenticate
from disco.cluster.cluster_hosts import ClusterHosts
from disco.cluster.hosts import HostPool
from disco.cluster.lifecycle import Lifecycle
from disco.cluster.secrets import SecretBox
from disco.cluster.service import ClusterService
from disco.cluster.store import Store
from disco.errors import DiscoError
from disco.frameworks.catalog import Catalog, load_catalog
from disco.frameworks.render import cache_dir
from disco.cluster.cluster_access import StoredClusterAccess
from disco.providers import load_provider
from disco.providers.base import ProviderResources
from disco.cluster.settings import Settings
from disco.cluster.ui import pages as ui_pages
from disco.cluster.ui.routes import install_ui
from disco.taskfarm import server as farm_server


@dataclass
class Manager:
    settings: Settings
    store: Store
    catalog: Catalog
    lifecycle: Lifecycle
    service: ClusterService
    throttle: FailedAuthThrottle
    hosts: HostPool


def build_manager(settings: Settings) -> Manager:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.effective_database_url)
    catalog = load_catalog(*settings.extra_framework_dirs)
    box = SecretBox(settings.data_dir)
    hosts = HostPool(store, box)
    resources = ProviderResources(data_dir=settings.data_dir, cache_dir=Path(cache_dir()),
                                  host_pool=ClusterHosts(hosts, store),
                                  node_index_url=settings.node_index_url,
                                  node_wheelhouse=settings.node_wheelhouse,
                                  cluster_access=StoredClusterAccess(store, box), public_url=settings.public_url)
    lifecycle = Lifecycle(store, catalog, settings, lambda name: load_provider(name, resources), box)
    service = ClusterService(settings, store, catalog, lifecycle, box)
    throttle = FailedAuthThrottle(settings.auth_failure_limit, settings.auth_failure_window_s)
    return Manager(settings, store, catalog, lifecycle, service, throttle, hosts)


def _tenant(app: FastAPI, token: str | None, client: str) -> str:
    manager: Manager = app.state.manager
    return authenticate(manager.store, token, throttle=manager.throttle, client=client)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        manager = build_manager(settings)
        app.state.manager = manager
        await manager.lifecycle.start()
        try:
            async with farm_server.running(farm):
                yield
        finally:
            await manager.lifecycle.close()
            manager.store.close()
            farm.store.close()

    app = FastAPI(title="DISCO service manager", version=disco.__version__, lifespan=lifespan,
                  description="Distributed computing clusters in seconds: create, watch, scale, delete.",
                  docs_url=None, redoc_url=None)  # served by install_docs, from local assets
    app.add_middleware(RequestLimits, max_body_bytes=settings.max_body_bytes)

    @app.exception_handler(DiscoError)
    async def _disco_error(request: Request, exc: DiscoError) -> Response:
        if ui_pages.is_ui(request):  # the dashboard answers with a page, in the same words
            return ui_pages.error_page(request, exc.status, exc.message, exc.code, getattr(exc, "headers", None))
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        if ui_pages.is_ui(request):
            return ui_pages.error_page(request, 422, "The address has a malformed part.", "invalid_request")
        details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"error": {"code": "invalid_request", "message": "invalid request",
                                       "details": details}}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _routing_error(request: Request, exc: HTTPException) -> Response:
        """No route for the path (404) or the method (405): our envelope, and the right `Allow`."""
        if ui_pages.is_ui(request) and exc.status_code == 404:
            return ui_pages.error_page(request, 404, "There is no such page.", "not_found")
        return route_error(app, request, exc)

    app.include_router(rest.router)
    app.include_router(recommendations.router)
    app.include_router(hosts.router)
    app.include_router(occi.router)
    app.include_router(node_payload.router)
    # The task farm (docs/taskfarm.md): its own tables in the same database, migrated now; its
    # owners are this service manager's tenants.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    farm = farm_server.attach(app, settings.effective_database_url, settings.data_dir / "farm",
                              lambda token, client: _tenant(app, token, client))
    install_docs(app)
    install_ui(app)  # the web dashboard at /ui/ (docs/dashboard.md)
    return app
