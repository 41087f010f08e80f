"""A Dask preload (`distributed.scheduler.preload`, `distributed.worker.preload`) that puts the
scheduler's and the workers' HTTP servers — dashboard, JSON and Prometheus routes — behind
the cluster's token, as the Map/Reduce master's web page is.

Dask imports preloads while a server is being made, before it starts its HTTP server; this
module then makes `distributed.node` build that server around a guard. A request passes with
`Authorization: Bearer <token>` (programs, the service manager's checks) or HTTP Basic with
any user name and the token as password (browsers ask for it); anything else gets 401 before
a handler sees it. The token is read from the file DISCO_DASHBOARD_TOKEN_FILE names; without
one, nothing changes.
"""

from __future__ import annotations

import os
from typing import Any

import distributed.node
from tornado import httputil
from tornado.httpserver import HTTPServer

from disco.token_check import carries_token

TOKEN_FILE_ENV = "DISCO_DASHBOARD_TOKEN_FILE"
_REFUSAL = b"this cluster's web pages need its token (HTTP Basic: any user name, the token as password)\n"


class _Guard(httputil.HTTPServerConnectionDelegate):
    def __init__(self, application: Any, token: bytes) -> None:
        self.application = application
        self.token = token

    def start_request(self, server_conn: object, request_conn: httputil.HTTPConnection) -> httputil.HTTPMessageDelegate:
        return _GuardedRequest(self.application.start_request(server_conn, request_conn), request_conn, self.token)

    def on_close(self, server_conn: object) -> None:
        self.application.on_close(server_conn)


class _GuardedRequest(httputil.HTTPMessageDelegate):
    """Hands the request on only once its headers show the token."""

    def __init__(self, inner: httputil.HTTPMessageDelegate, connection: httputil.HTTPConnection,
                 token: bytes) -> None:
        self.inner = inner
        self.connection = connection
        self.token = token
        self.refused = False

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> Any:
        if carries_token(headers.get("Authorization", "").encode("latin-1"), self.token, basic=True):
            return self.inner.headers_received(start_line, headers)
        self.refused = True
        self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", 401, "Unauthorized"),
            httputil.HTTPHeaders({"WWW-Authenticate": 'Basic realm="disco"', "Content-Type": "text/plain",
                                  "Content-Length": str(len(_REFUSAL)), "Connection": "close"}),
            _REFUSAL)
        self.connection.finish()
        return None

    def data_received(self, chunk: bytes) -> Any:
        return None if self.refused else self.inner.data_received(chunk)

    def finish(self) -> None:
        if not self.refused:
            self.inner.finish()

    def on_connection_close(self) -> None:
        if not self.refused:
            self.inner.on_connection_close()


def _token() -> str | None:
    path = os.environ.get(TOKEN_FILE_ENV)
    if not path:
        return None
    with open(path) as handle:
        return handle.read().strip() or None


def install() -> None:
    """Make distributed's nodes serve HTTP through the guard (idempotent)."""
    token = _token()
    if token is None or getattr(distributed.node.HTTPServer, "disco_guarded", False):
        return

    class GuardedHTTPServer(HTTPServer):
        disco_guarded = True

        def initialize(self, request_callback: Any, *args: Any, **kwargs: Any) -> None:
            super().initialize(_Guard(request_callback, token.encode()), *args, **kwargs)

    distributed.node.HTTPServer = GuardedHTTPServer


install()
