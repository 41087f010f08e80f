"""The master's ASGI application and its server.

Why Starlette + uvicorn rather than plain asyncio: the master speaks HTTP/1.1 to clients, nodes
and browsers, with keep-alive, request bodies up to 1 GiB and many long-polls held open at once
(every node's poll, every client's get_results). uvicorn's h11 protocol handling and Starlette's
routing give that for a few lines, and both run on the same event loop as the coordinators, so
handlers touch the master's state directly. FastAPI's request models would add nothing: Disco's
bodies are bare JSON strings and lists whose shapes the handlers check themselves.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette

from disco.mapreduce.auth import ASGIApp, guarded
from disco.mapreduce.ddfs import proxy as ddfs_proxy
from disco.mapreduce.ddfs import routes as ddfs_routes
from disco.mapreduce.master import ctrl_routes, node_routes
from disco.mapreduce.master.config import MasterConfig
from disco.mapreduce.master.master import Master

log = logging.getLogger(__name__)


def create_app(master: Master) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await master.start()
        log.info("master listening on %s (scheduler %s)", master.config.url, master.config.scheduler)
        try:
            yield
        finally:
            await master.stop()

    ddfs = ddfs_routes.routes() if master.config.ddfs_authority is None else ddfs_proxy.routes()
    app = Starlette(routes=ctrl_routes.routes() + ddfs + node_routes.routes(),
                    lifespan=lifespan)
    app.state.master = master
    return app


def guarded_app(master: Master) -> ASGIApp:
    """The app behind the cluster token, if the master has one (the web page takes Basic)."""
    return guarded(create_app(master), master.config.token, web_page=True)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, master: Master) -> None:
        super().__init__(config)
        self.master = master

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Held requests end now, not when their hold runs out (up to 2 s for a node's poll).
        self.master.release_held()
        await super().shutdown(sockets)


def serve(config: MasterConfig) -> None:
    master = Master(config)
    server = _Server(uvicorn.Config(
        guarded_app(master), host=config.host, port=config.port, log_level="warning",
        access_log=False, lifespan="on", timeout_keep_alive=30,
        # Polls are held open; give a stopping master little time to wait for them.
        timeout_graceful_shutdown=2,
    ), master)
    server.run()
