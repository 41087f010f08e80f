"""The node's DDFS upload server on DDFS_PUT_PORT (the app is `node_app.create_put_app`).

The node binds the port itself before handing it to uvicorn: uvicorn ends the whole process
when it cannot bind, and a node whose PUT port is taken should still run tasks (it then
stores no DDFS data and tells the master so by announcing no PUT port).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import uvicorn

from disco.mapreduce.auth import guarded
from disco.mapreduce.ddfs.node_app import create_put_app
from disco.mapreduce.ddfs.store import DdfsStore

log = logging.getLogger(__name__)


class UploadServer:
    def __init__(self, root: Path, host: str, listen: str, port: int,
                 server_class: type[uvicorn.Server] = uvicorn.Server,
                 token: str | None = None) -> None:
        self.token = token
        self.port = port
        self.listen = listen
        self.store = DdfsStore(root, host)
        self.server_class = server_class
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> bool:
        """Serve uploads; False (and a logged error) when the port cannot be had."""
        family = socket.AF_INET6 if ":" in self.listen else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.listen, self.port))
        except OSError as exc:
            sock.close()
            log.error("cannot serve DDFS uploads on %s:%d (%s); this node stores no DDFS data",
                      self.listen, self.port, exc)
            return False
        self.server = self.server_class(uvicorn.Config(
            guarded(create_put_app(self.store, self.token), self.token), log_level="warning", access_log=False, lifespan="off",
            timeout_graceful_shutdown=2, timeout_keep_alive=30))
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]))
        return True

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True

    async def wait(self) -> None:
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
