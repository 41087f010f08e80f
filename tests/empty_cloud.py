"""A loopback stand-in for an OpenStack cloud's two HTTP APIs, where no real cloud can run for a
test: Keystone v3 issues a token to any password (and records each login) and names a Heat
that knows no stack and refuses to make one. So a cluster in it fails at its stack, and its
deletion completes (Heat says there is no stack to delete) — unlike a URL where nothing
listens, which keeps a delete retrying (docs/openstack.md)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Where clusters' made-up clouds point (the fuzzer's, test_cloud_openstack's): a loopback
# address of no test host (those keep to 127.0.9.2-249).
MADE_UP_CLOUD = ("127.0.9.254", 9)
MADE_UP_AUTH_URL = f"http://{MADE_UP_CLOUD[0]}:{MADE_UP_CLOUD[1]}/v3"
REGIONS = ("RegionOne", "RegionTwo")


class EmptyCloudServer(ThreadingHTTPServer):
    url: str
    logins: list[dict[str, Any]]

    def server_bind(self) -> None:
        # Test runs side by side may each serve the same well-known address: any of them answers
        # alike, so they share the port.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class EmptyCloud(BaseHTTPRequestHandler):
    server: EmptyCloudServer

    def log_message(self, *_: Any) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v3":
            self._answer(200, {"version": {"id": "v3.14", "status": "stable",
                                           "links": [{"rel": "self", "href": f"{self.server.url}/v3/"}]}})
        elif "?" in self.path:
            self._answer(200, {"stacks": []})
        else:
            self._answer(404, {"error": {"message": "no such stack"}})

    def do_DELETE(self) -> None:
        self._answer(404, {"error": {"message": "no such stack"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.path == "/v3/auth/tokens":
            self.server.logins.append(body["auth"])
            catalog = [{"type": "orchestration", "name": "heat", "endpoints": [
                {"interface": interface, "region": r, "region_id": r, "url": f"{self.server.url}/v1/box"}
                for r in REGIONS for interface in ("public", "internal", "admin")]}]
            self._answer(201, {"token": {"methods": ["password"], "expires_at": "2999-01-01T00:00:00.000000Z",
                                         "issued_at": "2020-01-01T00:00:00.000000Z", "catalog": catalog,
                                         "user": {"id": "u1", "name": "alice", "domain": {"id": "default", "name": "Default"}},
                                         "project": {"id": "p1", "name": "science",
                                                     "domain": {"id": "default", "name": "Default"}}}},
                         {"X-Subject-Token": "user-token"})
        else:
            self._answer(400, {"error": {"message": "this cloud makes no stacks"}})


@contextmanager
def empty_cloud(address: str, port: int) -> Iterator[EmptyCloudServer]:
    """Serves the stand-in at http://address:port (Keystone under /v3) until the block ends."""
    server = EmptyCloudServer((address, port), EmptyCloud)
    server.url, server.logins = f"http://{address}:{port}", []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
