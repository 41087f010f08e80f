"""Which HTTP requests carry the cluster token (DISCO_CLUSTER_TOKEN), and how.

A master and its nodes that were given a token answer 401 to any request without
`Authorization: Bearer <token>`. Our clients (``disco.core``, ``disco.ddfs``, the schemes that
workers read inputs with, the ``disco`` and ``ddfs`` commands) all talk through
:mod:`disco.comm`, which asks this module, for every request and every redirect it follows,
whether the target is part of the cluster:

- the master's own origin (DISCO_MASTER, or the master given to ``Disco(...)``/``DDFS(...)``);
- ``http(s)://H:P`` with P one of the cluster's ports (DISCO_PORT, DDFS_PUT_PORT, as Disco
  tells node URLs apart) and H the master's host or one of its nodes. The node names are
  asked of the master (``/disco/ctrl/nodeinfo``) the first time a URL needs them, and again
  (at most every few seconds) when a host is not among them.

Nothing else gets the token: an input a job reads from any other server, or from another
cluster's node on the same port, is fetched without it.

A DDFS tag token (Disco sends it as HTTP Basic with the user name ``token``) cannot share the
``Authorization`` header with the cluster token; while a cluster token is in use it travels
in ``X-DDFS-Token`` instead, which the master reads as well.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import httpx

    from disco.settings import DiscoSettings

TOKEN_SETTING = "DISCO_CLUSTER_TOKEN"
DDFS_TOKEN_HEADER = "X-DDFS-Token"
EXTENSION = "disco_cluster_scope"  # the httpx request extension a scope travels in
NODE_REFRESH = 3.0  # seconds before the master is asked for its nodes again


@dataclass(eq=False)
class ClusterScope:
    """One cluster as a client sees it: its token, its master, its ports, its nodes."""

    token: str
    master: tuple[str, str, int]  # scheme, host, port of the master's URL
    ports: frozenset[int]
    _hosts: set[str] = field(default_factory=set)
    _asked_at: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def master_url(self) -> str:
        scheme, host, port = self.master
        return f"{scheme}://{_bracketed(host)}:{port}"

    def covers(self, url: httpx.URL | Origin) -> bool:
        """Whether `url` is served by this cluster's master or one of its nodes."""
        origin = (url.scheme, url.host, url.port or _default_port(url.scheme))
        if origin == self.master:
            return True
        if url.scheme not in ("http", "https") or origin[2] not in self.ports:
            return False
        if url.host == self.master[1] or url.host in self._hosts:
            return True
        return url.host in self._ask_nodes()

    def _ask_nodes(self) -> set[str]:
        with self._lock:
            if time.monotonic() - self._asked_at >= NODE_REFRESH:
                self._asked_at = time.monotonic()
                hosts = _nodeinfo_hosts(self)
                if hosts is not None:
                    self._hosts = hosts
            return self._hosts

    def authorize(self, request: httpx.Request) -> None:
        """Give `request` the token if it goes to this cluster (called for every hop)."""
        if self.covers(request.url):
            request.headers["Authorization"] = f"Bearer {self.token}"
        elif request.headers.get("Authorization", "").startswith("Bearer "):
            del request.headers["Authorization"]


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class Origin(NamedTuple):
    """A URL's scheme, host and port, as `covers` reads them (httpx.URL has the same names)."""

    scheme: str
    host: str
    port: int | None


def _nodeinfo_hosts(scope: ClusterScope) -> set[str] | None:
    """The master's node names, or None when it cannot say. A plain http:// master is asked
    with the standard library (a task reading from the cluster's nodes need not load httpx)."""
    headers = {"Authorization": f"Bearer {scope.token}"}
    try:
        if scope.master[0] == "http":
            import http.client

            conn = http.client.HTTPConnection(scope.master[1], scope.master[2], timeout=10.0)
            try:
                conn.request("GET", "/disco/ctrl/nodeinfo", headers=headers)
                reply = conn.getresponse()
                status, body = reply.status, reply.read()
            finally:
                conn.close()
        else:
            from disco import comm
            response = comm.client(False).get(
                f"{scope.master_url}/disco/ctrl/nodeinfo", timeout=10.0, headers=headers,
                extensions={EXTENSION: None})  # no hook work for the question itself
            status, body = response.status_code, response.content
        if status != 200:
            return None
        return {str(host) for host in json.loads(body)}
    except Exception:  # noqa: BLE001 - unreachable or odd master: no node is vouched for
        return None


_scopes: dict[tuple[Any, ...], ClusterScope] = {}
_scopes_lock = threading.Lock()


def scope_for(settings: DiscoSettings | None = None, master: str | None = None) -> ClusterScope | None:
    """The cluster a client talks to: the token from `settings` (DISCO_CLUSTER_TOKEN), the
    master given or DISCO_MASTER. None when no token is configured (an open cluster)."""
    from disco.settings import DiscoSettings
    from disco.util import master_url

    settings = settings if settings is not None else DiscoSettings()
    token = settings[TOKEN_SETTING]
    if not token:
        return None
    token = str(token).strip()
    base = master_url(master or settings["DISCO_MASTER"], settings["DISCO_PORT"])
    ports = frozenset({int(settings["DISCO_PORT"]), int(settings["DDFS_PUT_PORT"])})
    key = (token, base, ports)
    with _scopes_lock:
        scope = _scopes.get(key)
        if scope is None:
            scope = _scopes[key] = ClusterScope(token, _origin(base), ports)
        return scope


def _origin(url: str) -> tuple[str, str, int]:
    # The standard library's parser, as httpx.URL reads these (a lower-case host, no brackets).
    from urllib.parse import urlsplit
    parsed = urlsplit(url)
    scheme = parsed.scheme.lower()
    return scheme, (parsed.hostname or ""), parsed.port or _default_port(scheme)


def hook(request: httpx.Request) -> None:
    """httpx request hook of disco.comm's clients: runs before each request and redirect."""
    if EXTENSION in request.extensions:
        scope = request.extensions[EXTENSION]
    else:
        scope = scope_for()
    if scope is not None:
        scope.authorize(request)


def ddfs_token_headers(token: str) -> dict[str, str]:
    """A DDFS tag token, as a request that carries the cluster token sends it."""
    return {DDFS_TOKEN_HEADER: token}
