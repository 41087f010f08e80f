"""The node's log server (port 8084, as Disco's nodes had): deploy.log, logs/<process>.log
and /status over HTTP, behind the cluster's token (Bearer, or Basic with the token as
password), which the node knows only as a SHA-256.

    GET /status                -> the supervisor's status (JSON)
    GET /deploy.log            -> the bootstrap's log
    GET /logs/worker.log?offset=1024
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from disco.token_check import carries_token_hash

_LOG = re.compile(r"^/logs/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})\.log$")
_MAX_BODY = 16 << 20


class LogServer:
    def __init__(self, host: str, port: int, token_sha256: str, node_dir: Path,
                 status: Callable[[], dict[str, Any]]) -> None:
        self.node_dir = node_dir
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "disco-node"
            sys_version = ""

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if not carries_token_hash(self.headers.get("Authorization", "").encode("latin-1"),
                                          token_sha256, basic=True):
                    self._send(401, b"the cluster's token is needed\n", "text/plain",
                               {"WWW-Authenticate": 'Basic realm="disco node"'})
                    return
                url = urllib.parse.urlsplit(self.path)
                if url.path == "/status":
                    self._send(200, json.dumps(status()).encode(), "application/json")
                    return
                found = _LOG.match(url.path)
                if url.path == "/deploy.log":
                    path = server.node_dir / "deploy.log"
                elif found:
                    path = server.node_dir / "logs" / f"{found.group(1)}.log"
                else:
                    self._send(404, b"not found\n", "text/plain")
                    return
                query = urllib.parse.parse_qs(url.query)
                try:
                    offset = int(query.get("offset", ["0"])[0])
                except ValueError:
                    self._send(400, b"offset must be a number\n", "text/plain")
                    return
                try:
                    with open(path, "rb") as handle:
                        handle.seek(max(offset, 0))
                        body = handle.read(_MAX_BODY)
                except FileNotFoundError:
                    self._send(404, b"no such log\n", "text/plain")
                    return
                self._send(200, body, "text/plain; charset=utf-8")

            def _send(self, code: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # requests are not worth a line in the supervisor's log

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="log-server", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
