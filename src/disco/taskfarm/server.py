"""The farm as an app: `create_app` for `disco farm server` (standalone, owners use the token in
its admin token file), and `attach` for the service manager (the same router on its app, its
database URL, its tenants). Both run the transitions loop once a second."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

import disco
from disco.errors import DiscoError, Unauthorized
from disco.taskfarm.api import Authenticate, make_router
from disco.taskfarm.ddfs_io import DdfsAccess
from disco.taskfarm.fastpath import FastPath
from disco.taskfarm.schemas import ErrorEnvelope, FarmHealth
from disco.taskfarm.service import Farm, FarmConfig
from disco.database import hash_secret
from disco.taskfarm.store import FarmStore

log = logging.getLogger(__name__)
TICK_S = 1.0
STANDALONE_TENANT = "admin"
MAX_BODY_BYTES = 80 * 1024 * 1024


def config_from_env(output_dir: Path) -> FarmConfig:
    """The deployment's choices (env): input directories and URL hosts projects may name, the
    shortest lease, how recently a client must have been heard from to count as online, the DDFS
    master projects' tags are on (and its cluster token's file)."""
    def listed(name: str) -> list[str]:
        return [part for part in os.environ.get(name, "").split(",") if part]
    master = os.environ.get("DISCO_FARM_DDFS_MASTER", "")
    token_file = os.environ.get("DISCO_FARM_DDFS_TOKEN_FILE", "")
    put_port = os.environ.get("DISCO_FARM_DDFS_PUT_PORT", "")
    ddfs = DdfsAccess(master, Path(token_file) if token_file else None,
                      int(put_port) if put_port else None) if master else None
    return FarmConfig(output_dir=output_dir, input_dirs=[Path(p) for p in listed("DISCO_FARM_INPUT_DIRS")],
                      url_hosts=listed("DISCO_FARM_URL_HOSTS"),
                      min_lease_s=float(os.environ.get("DISCO_FARM_MIN_LEASE_S", "30")),
                      online_s=float(os.environ.get("DISCO_FARM_ONLINE_S", "60")), ddfs=ddfs)


async def run_loop(farm: Farm) -> None:
    while True:
        try:
            await asyncio.to_thread(farm.tick)
        except Exception:  # the database may be restarting: log it and try again next tick
            log.exception("farm tick failed")
        await asyncio.sleep(TICK_S)


@asynccontextmanager
async def running(farm: Farm) -> AsyncIterator[None]:
    """The loop, after the output files a crash of the machine lost are written again (before
    the app answers anyone); at the end, what was written since its last tick flushed."""
    restored = await asyncio.to_thread(farm.recover)
    if restored:
        log.warning("wrote %d output files again from the database (lost in a crash)", restored)
    task = asyncio.create_task(run_loop(farm))
    try:
        yield
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await asyncio.to_thread(farm.outputs.flush)


def attach(app: FastAPI, database_url: str, output_dir: Path, authenticate: Authenticate) -> Farm:
    """Mounts the farm on an app (the service manager's); runs the farm's migrations now. The
    caller runs `running(farm)` in its lifespan and closes `farm.store` at the end."""
    farm = Farm(FarmStore(database_url), config_from_env(output_dir))
    app.include_router(make_router(farm, authenticate))
    app.state.farm = farm  # the service manager's dashboard reads the overview from it
    return farm


# -- standalone ----------------------------------------------------------------------------------

def admin_token(path: Path) -> str:
    """The owner's token of a standalone server: made at first start, readable by its owner only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("fa_" + secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def token_check(expected: str) -> Authenticate:
    expected_hash = hash_secret(expected)

    def authenticate(token: str | None, _client: str) -> str:
        if not token:
            raise Unauthorized("missing X-Auth-Token header (the server's admin token file)", code="missing_token")
        if not hmac.compare_digest(hash_secret(token), expected_hash):
            raise Unauthorized("invalid token", code="invalid_token")
        return STANDALONE_TENANT

    return authenticate


class BodyLimit:
    """Refuses a body over the limit (413, the envelope) before a route reads it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
                body = json.dumps({"error": {"code": "body_too_large",
                                             "message": f"request body larger than {self.max_bytes} bytes"}}).encode()
                await send({"type": "http.response.start", "status": 413,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def create_app(database_url: str, data_dir: Path, token_file: Path | None = None,
               enrollment_key_file: Path | None = None) -> FastAPI:
    """`enrollment_key_file`: a key the server accepts from the start (the `taskfarm` framework's
    workers hold the same file), so that no owner has to make one before clients can enroll."""
    data_dir.mkdir(parents=True, exist_ok=True)
    token = admin_token(token_file or data_dir / "admin-token")
    app = FastAPI(title="DISCO task farm", version=disco.__version__, docs_url=None, redoc_url=None)
    farm = attach(app, database_url, data_dir / "output", token_check(token))
    if enrollment_key_file is not None:
        key = enrollment_key_file.read_text().strip()
        if not key:
            raise ValueError(f"the enrollment key file {enrollment_key_file} is empty")
        farm.ensure_key(STANDALONE_TENANT, key, f"from {enrollment_key_file.name}")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with running(farm):
            yield
        farm.store.close()

    app.router.lifespan_context = lifespan
    app.add_middleware(FastPath, farm=farm)  # the protocol's hot requests (fastpath.py), inside the body limit
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    install_error_handlers(app)

    @app.get("/api/v1/farm/health", operation_id="farmHealth", response_model=FarmHealth)
    def health() -> dict[str, Any]:
        return {"status": "ok"}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            models = schema.setdefault("components", {}).setdefault("schemas", {})
            models["ErrorEnvelope"] = ErrorEnvelope.model_json_schema()
            schema["components"]["securitySchemes"] = SECURITY_SCHEMES
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


SECURITY_SCHEMES = {
    "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token", "description": "The owner's token."},
    "bearer": {"type": "http", "scheme": "bearer", "description": "A client token (or the owner's)."},
    "farmKey": {"type": "apiKey", "in": "header", "name": "X-Farm-Key", "description": "An enrollment key."},
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DiscoError)
    async def _disco_error(_request: Request, exc: DiscoError) -> Response:
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> Response:
        details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"error": {"code": "invalid_request", "message": "invalid request",
                                       "details": details}}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
